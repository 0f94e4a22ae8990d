"""OAuth 2.0 and SOAP login: /services/oauth2/authorize (auto-approves), /services/oauth2/token
(password, authorization_code with PKCE, refresh_token, JWT bearer, client_credentials),
/services/oauth2/revoke, /services/Soap/u/{version} login, identity URLs."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import html
import json
import re
from email import policy
from email.parser import BytesParser
from typing import Any
from urllib.parse import parse_qsl, urlencode

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from .api import authenticate, bearer, limit_header
from .errors import OAuthError, SfError
from .state import AuthCode, ConnectedApp, Sandbox, Session, User

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
PUBLIC_AUDIENCES = ("https://login.salesforce.com", "https://test.salesforce.com")
MAX_ASSERTION_LIFETIME = 180.0  # exp at most 3 minutes ahead
CLOCK_SKEW = 5.0
_SOAP_FIELD = r"<(?:[\w-]+:)?{name}(?:\s[^>]*)?>(.*?)</(?:[\w-]+:)?{name}>"


def _sb(request: Request) -> Sandbox:
    return request.app.state.sandbox


def _outage(sb: Sandbox) -> bool:
    return sb.faults.outage_until is not None and sb.clock() < sb.faults.outage_until


def identity_url(sb: Sandbox, user: User) -> str:
    return f"{sb.login_url}/id/{user.org_id}/{user.id}"


def token_response(
    sb: Sandbox, session: Session, app: ConnectedApp | None, *, refresh_token: str | None = None
) -> dict[str, Any]:
    """Salesforce's token answer: no expires_in (a session lasts as the org's session settings say)."""
    org = sb.orgs[session.org_id]
    user = org.users[session.user_id]
    issued_at = str(session.issued_ms)
    ident = identity_url(sb, user)
    body: dict[str, Any] = {"access_token": session.token}
    if refresh_token:
        body["refresh_token"] = refresh_token
    if app is not None:
        # signature: Base64 HMAC-SHA256 of id + issued_at, keyed with the consumer secret
        digest = hmac.new(app.consumer_secret.encode(), (ident + issued_at).encode(), hashlib.sha256).digest()
        body["signature"] = base64.b64encode(digest).decode()
    body.update(scope=session.scope, instance_url=org.instance_url, id=ident, token_type="Bearer", issued_at=issued_at)  # noqa: S106
    return body


async def _form(request: Request) -> dict[str, str]:
    """Form-encoded parameters (the body of a POST, else the query string)."""
    if request.method == "GET":
        return dict(request.query_params)
    content_type = request.headers.get("content-type", "")
    raw = await request.body()
    if content_type.startswith("application/x-www-form-urlencoded"):
        return dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
    if content_type.startswith("multipart/form-data"):
        message = BytesParser(policy=policy.HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + raw)
        form = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if isinstance(name, str):
                form[name] = part.get_payload(decode=True).decode("utf-8", "replace")
        return form
    return dict(request.query_params)


def _client_credentials(request: Request, form: dict[str, str]) -> tuple[str | None, str | None]:
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic" and encoded:
        try:
            client_id, _, secret = base64.b64decode(encoded).decode().partition(":")
            return client_id, secret
        except (binascii.Error, UnicodeDecodeError):
            return None, None
    return form.get("client_id"), form.get("client_secret")


def _app(sb: Sandbox, client_id: str | None, secret: str | None, *, secret_required: bool) -> ConnectedApp:
    app = sb.apps.get(client_id or "")
    if app is None:
        raise OAuthError("invalid_client_id", "client identifier invalid")
    if (secret_required or secret is not None) and not hmac.compare_digest(secret or "", app.consumer_secret):
        raise OAuthError("invalid_client", "invalid client credentials")
    return app


def _user_in(sb: Sandbox, app: ConnectedApp, username: str | None) -> User | None:
    user = sb.user_by_name(username or "")
    return user if user is not None and user.org_id == app.org_id else None


async def token(request: Request) -> Response:
    sb = _sb(request)
    if _outage(sb):
        return JSONResponse({"error": "server_error", "error_description": "server temporarily unavailable"}, 503)
    form = await _form(request)
    try:
        body = _grant(sb, request, form)
    except OAuthError as err:
        return JSONResponse(err.body(), status_code=err.status)
    return JSONResponse(body, headers={"Cache-Control": "no-cache,must-revalidate,max-age=0,no-store,private"})


def _grant(sb: Sandbox, request: Request, form: dict[str, str]) -> dict[str, Any]:
    grant_type = form.get("grant_type")
    client_id, secret = _client_credentials(request, form)
    if grant_type == "password":
        app = _app(sb, client_id, secret, secret_required=True)
        user = _user_in(sb, app, form.get("username"))
        # the security token is appended to the password
        if user is None or not hmac.compare_digest(form.get("password") or "", user.password + user.security_token):
            raise OAuthError("invalid_grant", "authentication failure")
        return token_response(sb, sb.open_session(user, app, app.scopes), app)
    if grant_type == "authorization_code":
        return _authorization_code(sb, form, client_id, secret)
    if grant_type == "refresh_token":
        app = sb.apps.get(client_id or "")
        app = _app(sb, client_id, secret, secret_required=bool(app and app.require_secret_for_refresh))
        grant = sb.refresh_tokens.get(form.get("refresh_token") or "")
        if grant is None or grant.revoked or grant.app_key != app.consumer_key:
            raise OAuthError("invalid_grant", "expired access/refresh token")
        user = sb.orgs[grant.org_id].users[grant.user_id]
        session = sb.open_session(user, app, grant.scope, refresh=grant.token)
        return token_response(sb, session, app)
    if grant_type == JWT_GRANT:
        return _jwt_bearer(sb, form.get("assertion") or "")
    if grant_type == "client_credentials":
        app = _app(sb, client_id, secret, secret_required=True)
        user = _user_in(sb, app, app.client_credentials_user) if app.client_credentials_user else None
        if user is None:
            raise OAuthError("invalid_grant", "no client credentials user enabled")
        return token_response(sb, sb.open_session(user, app, app.scopes), app)
    raise OAuthError("unsupported_grant_type", "grant type not supported")


def _authorization_code(sb: Sandbox, form: dict[str, str], client_id: str | None, secret: str | None) -> dict[str, Any]:
    known = sb.apps.get(client_id or "")
    app = _app(sb, client_id, secret, secret_required=bool(known and known.require_secret_for_web_server))
    code = sb.codes.get(form.get("code") or "")
    if code is None or code.used or code.app_key != app.consumer_key:
        raise OAuthError("invalid_grant", "invalid authorization code")
    if sb.clock() > code.expires_at:
        raise OAuthError("invalid_grant", "expired authorization code")
    if form.get("redirect_uri") != code.redirect_uri:
        raise OAuthError("invalid_grant", "redirect_uri mismatch")
    if code.challenge is not None:
        verifier = form.get("code_verifier")
        if not verifier:
            raise OAuthError("invalid_grant", "invalid code verifier")
        computed = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
        if not hmac.compare_digest(computed, code.challenge):
            raise OAuthError("invalid_request", "invalid code verifier")
    code.used = True
    user = sb.orgs[code.org_id].users[code.user_id]
    scopes = code.scope.split()
    refresh = None
    if "refresh_token" in scopes or "offline_access" in scopes:
        refresh = sb.grant_refresh(user, app, code.scope).token
    session = sb.open_session(user, app, code.scope, refresh=refresh)
    return token_response(sb, session, app, refresh_token=refresh)


def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _jwt_bearer(sb: Sandbox, assertion: str) -> dict[str, Any]:
    invalid = OAuthError("invalid_grant", "invalid assertion")
    parts = assertion.split(".")
    if len(parts) != 3:
        raise invalid
    try:
        header, claims, signature = json.loads(_b64(parts[0])), json.loads(_b64(parts[1])), _b64(parts[2])
    except (ValueError, binascii.Error):
        raise invalid from None
    if not isinstance(header, dict) or not isinstance(claims, dict) or header.get("alg") != "RS256":
        raise invalid
    app = sb.apps.get(str(claims.get("iss", "")))
    if app is None:
        raise OAuthError("invalid_client_id", "client identifier invalid")
    if app.public_key is None:
        raise invalid
    try:
        app.public_key.verify(signature, f"{parts[0]}.{parts[1]}".encode(), padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise invalid from None
    audiences = claims.get("aud")
    audiences = audiences if isinstance(audiences, list) else [audiences]
    accepted = {*PUBLIC_AUDIENCES, sb.login_url, sb.settings.base_url.rstrip("/")}
    if not any(isinstance(a, str) and a.rstrip("/") in accepted for a in audiences):
        raise OAuthError("invalid_grant", "audience is invalid")
    try:
        exp = float(claims["exp"])  # simple-salesforce sends it as a string
    except (KeyError, TypeError, ValueError):
        raise invalid from None
    now = sb.clock()
    if exp <= now:
        raise OAuthError("invalid_grant", "expired authorization code")
    if exp > now + MAX_ASSERTION_LIFETIME + CLOCK_SKEW:
        raise invalid
    user = _user_in(sb, app, str(claims.get("sub", "")))
    if user is None:
        raise OAuthError("invalid_grant", "user hasn't approved this consumer")
    return token_response(sb, sb.open_session(user, app, app.scopes), app)


async def authorize(request: Request) -> Response:
    """The web-server (response_type=code) and user-agent (token) flows; the user approves at once
    (``login_hint`` picks the user, else the app's org's first user)."""
    sb = _sb(request)
    params = dict(request.query_params)
    app = sb.apps.get(params.get("client_id", ""))
    if app is None:
        return JSONResponse({"error": "invalid_client_id", "error_description": "client identifier invalid"}, 400)
    redirect_uri = params.get("redirect_uri", "")
    if redirect_uri not in app.redirect_uris:
        return JSONResponse(
            {"error": "redirect_uri_mismatch", "error_description": "redirect_uri must match configuration"}, 400
        )
    state = {"state": params["state"]} if "state" in params else {}
    separator = "&" if "?" in redirect_uri else "?"

    def fail(error: str, description: str) -> Response:
        query = urlencode({"error": error, "error_description": description, **state})
        return RedirectResponse(f"{redirect_uri}{separator}{query}", status_code=302)

    response_type = params.get("response_type")
    if response_type not in ("code", "token"):
        return fail("unsupported_response_type", "response type not supported")
    user = _user_in(sb, app, params.get("login_hint")) or sb.first_user(sb.orgs[app.org_id])
    requested = params.get("scope", "").split()
    scope = " ".join(requested) if requested else app.scopes
    if response_type == "token":
        session = sb.open_session(user, app, scope)
        fragment = urlencode({**token_response(sb, session, app), **state})
        return RedirectResponse(f"{redirect_uri}#{fragment}", status_code=302)
    challenge = params.get("code_challenge")
    method = params.get("code_challenge_method", "S256")
    if challenge is not None and method != "S256":
        return fail("invalid_request", "code_challenge_method must be S256")
    code = "aPrx" + sb.token(48) + "=="
    sb.codes[code] = AuthCode(
        code,
        app.consumer_key,
        app.org_id,
        user.id,
        redirect_uri,
        scope,
        challenge,
        sb.clock() + sb.settings.auth_code_ttl,
    )
    return RedirectResponse(f"{redirect_uri}{separator}{urlencode({'code': code, **state})}", status_code=302)


async def revoke(request: Request) -> Response:
    sb = _sb(request)
    value = (await _form(request)).get("token", "")
    grant = sb.refresh_tokens.get(value)
    if grant is not None:
        grant.revoked = True
        for session in sb.sessions.values():
            if session.refresh_token == value:
                session.revoked = True
        return Response(status_code=200)
    session = sb.sessions.get(value)
    if session is not None:
        session.revoked = True
        return Response(status_code=200)
    return JSONResponse(
        {"error": "unsupported_token_type", "error_description": "this token type is not supported"}, 400
    )


# -- SOAP login ------------------------------------------------------------------------------------


def _soap_value(body: str, name: str) -> str | None:
    found = re.search(_SOAP_FIELD.format(name=name), body, re.DOTALL)
    if found is None:
        return None
    value = found.group(1).strip()
    if value.startswith("<![CDATA[") and value.endswith("]]>"):
        return value[9:-3]
    return html.unescape(value)


def _soap_fault(code: str, message: str) -> Response:
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:sf="urn:fault.partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        f"<soapenv:Body><soapenv:Fault><faultcode>sf:{code}</faultcode><faultstring>{code}: {html.escape(message)}"
        f'</faultstring><detail><sf:LoginFault xsi:type="sf:LoginFault"><sf:exceptionCode>{code}</sf:exceptionCode>'
        f"<sf:exceptionMessage>{html.escape(message)}</sf:exceptionMessage></sf:LoginFault></detail>"
        "</soapenv:Fault></soapenv:Body></soapenv:Envelope>"
    )
    return Response(xml, status_code=500, media_type="text/xml; charset=utf-8")


async def soap_login(request: Request) -> Response:
    """Partner API ``login()``: password + security token; answers sessionId and serverUrl."""
    sb = _sb(request)
    if _outage(sb):
        return _soap_fault("SERVER_UNAVAILABLE", "Server temporarily unavailable")
    version = request.path_params["version"]
    if not re.fullmatch(r"\d+\.0", version) or not 8 <= float(version) <= sb.settings.max_api_version:
        return _soap_fault("UNSUPPORTED_API_VERSION", f"Invalid Api version specified on URL: {version}")
    body = (await request.body()).decode("utf-8", "replace")
    username, password = _soap_value(body, "username"), _soap_value(body, "password")
    if username is None or password is None:
        return _soap_fault("INVALID_LOGIN", "Invalid username, password, security token; or user locked out.")
    user = sb.user_by_name(username)
    if user is None or not hmac.compare_digest(password, user.password + user.security_token):
        return _soap_fault("INVALID_LOGIN", "Invalid username, password, security token; or user locked out.")
    org = sb.orgs[user.org_id]
    session = sb.open_session(user, None, "full", client=_soap_value(body, "client"))
    server = f"{org.instance_url}/services/Soap/u/{version}/{org.id[:15]}"
    meta = f"{org.instance_url}/services/Soap/m/{version}/{org.id[:15]}"
    info = {
        "accessibilityMode": "false",
        "currencySymbol": "$",
        "orgAttachmentFileSizeLimit": "5242880",
        "orgDefaultCurrencyIsoCode": "USD",
        "orgDisallowHtmlAttachments": "false",
        "orgHasPersonAccounts": "true",
        "organizationId": org.id,
        "organizationMultiCurrency": "false",
        "organizationName": org.name,
        "profileId": "00e" + org.id[3:15],
        "roleId": "",
        "sessionSecondsValid": str(int(org.session_timeout)),
        "userDefaultCurrencyIsoCode": "",
        "userEmail": user.email,
        "userFullName": user.name,
        "userId": user.id,
        "userLanguage": "en_US",
        "userLocale": "en_US",
        "userName": user.username,
        "userTimeZone": "America/New_York",
        "userType": "Standard",
        "userUiSkin": "Theme3",
    }
    user_info = "".join(
        f'<{k} xsi:nil="true"/>' if v == "" else f"<{k}>{html.escape(v)}</{k}>" for k, v in info.items()
    )
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns="urn:partner.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        f"<soapenv:Body><loginResponse><result><metadataServerUrl>{html.escape(meta)}</metadataServerUrl>"
        "<passwordExpired>false</passwordExpired><sandbox>true</sandbox>"
        f"<serverUrl>{html.escape(server)}</serverUrl><sessionId>{html.escape(session.token)}</sessionId>"
        f"<userId>{user.id}</userId><userInfo>{user_info}</userInfo></result></loginResponse></soapenv:Body>"
        "</soapenv:Envelope>"
    )
    return Response(xml, media_type="text/xml; charset=utf-8")


# -- identity --------------------------------------------------------------------------------------


def _identity_session(request: Request) -> tuple[Sandbox, Session, User] | Response:
    sb = _sb(request)
    headers = {k.lower(): v for k, v in request.headers.items()}
    if bearer(headers) is None and "access_token" in request.query_params:
        headers["authorization"] = f"Bearer {request.query_params['access_token']}"
    try:
        session, _, user = authenticate(sb, headers)
    except SfError:
        return Response("Bad_OAuth_Token", status_code=403, media_type="text/plain")
    return sb, session, user


async def identity(request: Request) -> Response:
    found = _identity_session(request)
    if isinstance(found, Response):
        return found
    sb, _, user = found
    org = sb.orgs[user.org_id]
    if request.path_params["org_id"][:15] != org.id[:15] or request.path_params["user_id"][:15] != user.id[:15]:
        return Response("Bad_Id", status_code=403, media_type="text/plain")
    base = f"{org.instance_url}/services/data/v{{version}}/"
    return JSONResponse(
        {
            "id": identity_url(sb, user),
            "asserted_user": True,
            "user_id": user.id,
            "organization_id": org.id,
            "username": user.username,
            "nick_name": user.username.split("@")[0],
            "display_name": user.name,
            "email": user.email,
            "email_verified": True,
            "first_name": user.first_name,
            "last_name": user.last_name,
            "active": True,
            "user_type": "STANDARD",
            "language": "en_US",
            "locale": "en_US",
            "utcOffset": -18000000,
            "urls": {
                "rest": base,
                "sobjects": base + "sobjects/",
                "query": base + "query/",
                "limits": base + "limits/",
                "composite": base + "composite/",
            },
        },
        headers=limit_header(org),
    )


async def userinfo(request: Request) -> Response:
    found = _identity_session(request)
    if isinstance(found, Response):
        return found
    sb, _, user = found
    return JSONResponse(
        {
            "sub": identity_url(sb, user),
            "user_id": user.id,
            "organization_id": user.org_id,
            "preferred_username": user.username,
            "nickname": user.username.split("@")[0],
            "name": user.name,
            "email": user.email,
            "email_verified": True,
            "given_name": user.first_name,
            "family_name": user.last_name,
            "zoneinfo": "America/New_York",
            "active": True,
            "user_type": "STANDARD",
        }
    )
