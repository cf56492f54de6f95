"""Entry point of `signalflow run matcher`."""

from faust import Worker

from services.matcher.app import create_app
from services.matcher.settings import MatcherSettings
from signalflow.settings import get_settings


def main() -> None:
    """Run the matcher worker in the foreground until SIGTERM or SIGINT."""
    own = MatcherSettings()
    app = create_app(get_settings(), own)
    Worker(app, loglevel="INFO").execute_from_commandline()
