from libs.service import run_main
from services.connection.server import NAME, start

if __name__ == "__main__":
    run_main(NAME, start)
