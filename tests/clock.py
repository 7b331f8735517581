"""``pytest --clock 2027-01-01T00:01:30Z``: the whole run happens at that instant.

The clock is travelled with time-machine (``tick=True``, so time flows on from the
instant) in ``pytest_configure``, which runs in the main process and again in every
pytest-xdist worker, before any test module, fixture, factory or the live server
starts; everything in those processes reads the travelled clock. Each test then
starts again at the instant (and ticks), before any of its fixtures: a test sees the
same clock whatever ran before it and however fast, so a failure at an instant is
reproduced by running that test alone with the same option. A test that pins its own
instant (``@pytest.mark.time_machine`` or the ``time_machine`` fixture) travels on
from there. Without the option nothing is travelled.

Browser tests are skipped under ``--clock``: Chromium keeps the real clock while the
server would be elsewhere in time (cookie expiry, the pages' own dates), so they would
test the mismatch, not the product. They run in the ordinary (untravelled) runs.
"""

import datetime as dt

import pytest
import time_machine

_traveller = None


def parse_instant(text: str) -> dt.datetime:
    """An ISO 8601 instant with an explicit offset (``Z`` or ``+HH:MM``)."""
    try:
        instant = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as error:
        raise pytest.UsageError(
            f"--clock: not an ISO 8601 instant: {text!r}"
        ) from error
    if instant.tzinfo is None:
        raise pytest.UsageError(f"--clock: give the offset, e.g. {text}Z")
    return instant


def pytest_addoption(parser):
    parser.addoption(
        "--clock",
        metavar="INSTANT",
        default=None,
        help="run the whole suite with the clock travelled to INSTANT "
        "(ISO 8601 with offset, e.g. 2027-01-01T00:01:30Z) and ticking",
    )


def pytest_configure(config):
    global _traveller
    text = config.getoption("--clock")
    if text and _traveller is None:
        _traveller = time_machine.travel(parse_instant(text), tick=True)
        _traveller.start()


def pytest_unconfigure(config):
    global _traveller
    if _traveller is not None:
        _traveller.stop()
        _traveller = None


def pytest_report_header(config):
    text = config.getoption("--clock")
    if text:
        return f"clock: travelled to {parse_instant(text).isoformat()} (ticking)"
    return None


@pytest.fixture
def _clock_restart(request):
    text = request.config.getoption("--clock")
    if not text:
        yield
        return
    with time_machine.travel(parse_instant(text), tick=True):
        yield


# Last, after time-machine's own hook has put its fixture (the marker's instant)
# first: the restart goes before it, so a test's own pin wins.
@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    if not config.getoption("--clock"):
        return
    skip = pytest.mark.skip(
        reason="--clock: Chromium's clock is not travelled, only the server's"
    )
    for item in items:
        if hasattr(item, "fixturenames"):
            item.fixturenames.insert(0, "_clock_restart")
        if item.get_closest_marker("browser"):
            item.add_marker(skip)
