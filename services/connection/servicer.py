"""Connection gRPC servicer: protobuf in, use case, protobuf out."""

from __future__ import annotations

from datetime import UTC, datetime

from libs.errors import InvalidArgument, PermissionDenied, Unauthenticated
from libs.identity import current_caller
from libs.proto_convert import required, timestamp
from libs.protos.concord.connection.v1 import connection_pb2 as pb
from libs.protos.concord.connection.v1 import connection_pb2_grpc
from services.connection import convert
from services.connection.audit import SHRED, CredentialAudit, audited
from services.connection.inbound import INBOUND_KIND, InboundAccess, InboundKey, Subscription
from services.connection.oauth_server import Grant, OAuthServer
from services.connection.service import ConnectionService


def _key(key: InboundKey) -> pb.InboundKey:
    return pb.InboundKey(
        key_id=key.key_id,
        config_id=key.config_id,
        practice_id=key.practice_id,
        label=key.label,
        create_time=timestamp(key.created_at),
        last_use_time=timestamp(key.last_used_at),
    )


def _grant(grant: Grant) -> pb.IssuedOAuthGrant:
    return pb.IssuedOAuthGrant(
        grant_id=grant.grant_id,
        client_id=grant.client_id,
        config_id=grant.config_id,
        practice_id=grant.practice_id,
        scopes=list(grant.scopes),
        create_time=timestamp(grant.created_at),
        last_use_time=timestamp(grant.last_used_at),
        last_refresh_time=timestamp(grant.last_refresh_at),
        expire_time=timestamp(grant.expires_at),
    )


def _subscription(subscription: Subscription) -> pb.HookSubscription:
    return pb.HookSubscription(
        subscription_id=subscription.subscription_id,
        config_id=subscription.config_id,
        event=subscription.event,
        target_url=subscription.target_url,
        signing_secret=subscription.signing_secret,
        create_time=timestamp(subscription.created_at),
    )


class ConnectionServicer(connection_pb2_grpc.ConnectionServiceServicer):
    def __init__(
        self,
        service: ConnectionService,
        inbound: InboundAccess,
        oauth: OAuthServer,
        audit: CredentialAudit | None = None,
    ) -> None:
        self._service = service
        self._inbound = inbound
        self._oauth = oauth
        self._audit = audit

    async def SetOAuthClient(self, request: pb.SetOAuthClientRequest, context) -> pb.SetOAuthClientResponse:  # noqa: ANN001
        # The secret is optional where no flow sends one (SMART backend services); the service decides.
        client = await self._service.set_oauth_client(
            required(request.integration_type, "integration_type"),
            required(request.client_id, "client_id"),
            request.client_secret,
        )
        return pb.SetOAuthClientResponse(integration_type=client.integration_type, client_id=client.client_id)

    async def StartAuthorization(self, request, context) -> pb.StartAuthorizationResponse:  # noqa: ANN001
        url, state = await self._service.start_authorization(
            required(request.config_id, "config_id"), required(request.redirect_uri, "redirect_uri")
        )
        return pb.StartAuthorizationResponse(authorization_url=url, state=state)

    async def CompleteAuthorization(self, request, context) -> pb.CompleteAuthorizationResponse:  # noqa: ANN001
        connection = await self._service.complete_authorization(
            required(request.state, "state"), required(request.code, "code")
        )
        return pb.CompleteAuthorizationResponse(connection=convert.connection_to_proto(connection))

    async def GetConnection(self, request, context) -> pb.GetConnectionResponse:  # noqa: ANN001
        connection = await self._service.get_connection(required(request.config_id, "config_id"))
        return pb.GetConnectionResponse(connection=convert.connection_to_proto(connection))

    async def FindConnections(self, request, context) -> pb.FindConnectionsResponse:  # noqa: ANN001
        found = await self._service.find_connections(request.integration_type, request.external_account_id)
        return pb.FindConnectionsResponse(connections=[convert.connection_to_proto(c) for c in found])

    async def GetAccessToken(self, request, context) -> pb.GetAccessTokenResponse:  # noqa: ANN001
        token = await self._service.get_access_token(required(request.config_id, "config_id"), request.force_refresh)
        return pb.GetAccessTokenResponse(
            access_token=token.access_token,
            expire_time=timestamp(token.expires_at),
            external_account_id=token.external_account_id,
            api_base_url=token.api_base_url,
            token_type=token.token_type,
        )

    async def ConnectWithCredentials(self, request, context) -> pb.ConnectWithCredentialsResponse:  # noqa: ANN001
        config_id = required(request.config_id, "config_id")
        connection = await self._service.connect_with_credentials(
            config_id, convert.credential_from_proto(request), request.external_account_id
        )
        return pb.ConnectWithCredentialsResponse(connection=convert.connection_to_proto(connection))

    async def ShredPractice(self, request, context) -> pb.ShredPracticeResponse:  # noqa: ANN001
        practice_id = required(request.practice_id, "practice_id")
        caller = current_caller()
        if caller.practice_id and caller.role != "admin":
            raise PermissionDenied("only an admin of the practice may offboard it", reason="ROLE_FORBIDDEN")
        destroyed = await self._service.shred_practice(practice_id)
        await audited(self._audit, SHRED, f"Practice/{practice_id}", practice_id, "")
        return pb.ShredPracticeResponse(keys_destroyed=destroyed)

    async def Disconnect(self, request, context) -> pb.DisconnectResponse:  # noqa: ANN001
        connection, revoked = await self._service.disconnect(required(request.config_id, "config_id"))
        if connection.credential_kind == INBOUND_KIND:
            # Zapier reaches the config only with what Concord issued it: Disconnect ends all of it
            # for good, so connecting again (by a key or a code exchange) brings none of it back.
            await self._inbound.end_keys(connection.config_id)
            await self._oauth.end_grants(connection.config_id)
        return pb.DisconnectResponse(connection=convert.connection_to_proto(connection), revoked_at_vendor=revoked)

    async def CreateInboundKey(self, request, context) -> pb.CreateInboundKeyResponse:  # noqa: ANN001
        key, api_key = await self._inbound.create_key(required(request.config_id, "config_id"), request.label)
        return pb.CreateInboundKeyResponse(key=_key(key), api_key=api_key)

    async def RevokeInboundKey(self, request, context) -> pb.RevokeInboundKeyResponse:  # noqa: ANN001
        await self._inbound.revoke_key(required(request.config_id, "config_id"), required(request.key_id, "key_id"))
        return pb.RevokeInboundKeyResponse()

    async def ListInboundKeys(self, request, context) -> pb.ListInboundKeysResponse:  # noqa: ANN001
        found, token = await self._inbound.keys(
            required(request.config_id, "config_id"), request.page_size, request.page_token
        )
        return pb.ListInboundKeysResponse(keys=[_key(k) for k in found], next_page_token=token)

    async def AuthenticateInboundKey(self, request, context) -> pb.AuthenticateInboundKeyResponse:  # noqa: ANN001
        key = await self._inbound.authenticate(required(request.api_key, "api_key"))
        return pb.AuthenticateInboundKeyResponse(key=_key(key))

    async def CreateHookSubscription(self, request, context) -> pb.CreateHookSubscriptionResponse:  # noqa: ANN001
        subscription = await self._inbound.subscribe(
            required(request.config_id, "config_id"),
            required(request.event, "event"),
            required(request.target_url, "target_url"),
        )
        return pb.CreateHookSubscriptionResponse(subscription=_subscription(subscription))

    async def DeleteHookSubscription(self, request, context) -> pb.DeleteHookSubscriptionResponse:  # noqa: ANN001
        await self._inbound.unsubscribe(
            required(request.config_id, "config_id"), required(request.subscription_id, "subscription_id")
        )
        return pb.DeleteHookSubscriptionResponse()

    async def ListHookSubscriptions(self, request, context) -> pb.ListHookSubscriptionsResponse:  # noqa: ANN001
        found, token = await self._inbound.subscriptions(
            required(request.config_id, "config_id"),
            request.event,
            request.include_secrets,
            request.page_size,
            request.page_token,
        )
        return pb.ListHookSubscriptionsResponse(subscriptions=[_subscription(s) for s in found], next_page_token=token)

    # --- Concord as the OAuth 2.0 authorization server (Zapier) --------------------------------------

    async def CreateIssuedOAuthClient(self, request, context) -> pb.CreateIssuedOAuthClientResponse:  # noqa: ANN001
        client, secret = await self._oauth.register_client(
            required(request.config_id, "config_id"), required(request.redirect_uri, "redirect_uri")
        )
        return pb.CreateIssuedOAuthClientResponse(
            client=pb.IssuedOAuthClient(
                client_id=client.client_id,
                config_id=client.config_id,
                practice_id=client.practice_id,
                redirect_uri=client.redirect_uri,
                create_time=timestamp(client.created_at),
            ),
            client_secret=secret,
        )

    async def RevokeIssuedOAuthClient(self, request, context) -> pb.RevokeIssuedOAuthClientResponse:  # noqa: ANN001
        await self._oauth.revoke_client(
            required(request.config_id, "config_id"), required(request.client_id, "client_id")
        )
        return pb.RevokeIssuedOAuthClientResponse()

    async def ListIssuedOAuthGrants(self, request, context) -> pb.ListIssuedOAuthGrantsResponse:  # noqa: ANN001
        found, token = await self._oauth.grants(
            required(request.config_id, "config_id"), request.page_size, request.page_token
        )
        return pb.ListIssuedOAuthGrantsResponse(grants=[_grant(g) for g in found], next_page_token=token)

    async def RevokeIssuedOAuthGrant(self, request, context) -> pb.RevokeIssuedOAuthGrantResponse:  # noqa: ANN001
        await self._oauth.revoke_grant(required(request.config_id, "config_id"), required(request.grant_id, "grant_id"))
        return pb.RevokeIssuedOAuthGrantResponse()

    async def CreateOAuthConsentTicket(self, request, context) -> pb.CreateOAuthConsentTicketResponse:  # noqa: ANN001
        ticket = await self._oauth.create_ticket(
            required(request.config_id, "config_id"), required(request.client_id, "client_id")
        )
        return pb.CreateOAuthConsentTicketResponse(ticket=ticket)

    async def AuthorizeIssuedOAuth(self, request, context) -> pb.AuthorizeIssuedOAuthResponse:  # noqa: ANN001
        code = await self._oauth.authorize(
            request.ticket,
            required(request.client_id, "client_id"),
            required(request.redirect_uri, "redirect_uri"),
            request.code_challenge,
            request.code_challenge_method,
        )
        return pb.AuthorizeIssuedOAuthResponse(code=code)

    async def ExchangeIssuedOAuthToken(self, request, context) -> pb.ExchangeIssuedOAuthTokenResponse:  # noqa: ANN001
        client_id = required(request.client_id, "client_id")
        if request.grant_type == "authorization_code":
            tokens = await self._oauth.exchange_code(
                client_id,
                request.client_secret,
                required(request.code, "code"),
                request.redirect_uri,
                request.code_verifier,
            )
            await self._inbound.connect(tokens.config_id, datetime.now(UTC))
        elif request.grant_type == "refresh_token":
            tokens = await self._oauth.refresh(
                client_id, request.client_secret, required(request.refresh_token, "refresh_token")
            )
        else:
            raise InvalidArgument(
                "grant_type must be authorization_code or refresh_token",
                field="grant_type",
                reason="UNSUPPORTED_GRANT_TYPE",
            )
        return pb.ExchangeIssuedOAuthTokenResponse(
            access_token=tokens.access_token, refresh_token=tokens.refresh_token, expires_in=tokens.expires_in
        )

    async def AuthenticateIssuedAccessToken(self, request, context) -> pb.AuthenticateIssuedAccessTokenResponse:  # noqa: ANN001
        bearer = await self._oauth.authenticate(required(request.access_token, "access_token"))
        if not await self._inbound.is_connected(bearer.config_id):
            raise Unauthenticated("the access token is not valid", reason="INVALID_ACCESS_TOKEN")
        return pb.AuthenticateIssuedAccessTokenResponse(
            client_id=bearer.client_id, config_id=bearer.config_id, practice_id=bearer.practice_id
        )
