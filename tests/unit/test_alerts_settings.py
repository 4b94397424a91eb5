"""`docshift alerts setup` without an alert URL is a plain one-line error, before anything touches Prefect."""

import pytest

from docshift import cli


def test_setup_without_url_or_secret_is_a_plain_error(monkeypatch, capsys):
    monkeypatch.delenv("DOCSHIFT_ALERT_URL", raising=False)
    monkeypatch.delenv("DOCSHIFT_ALERT_SECRET", raising=False)
    monkeypatch.setattr("sys.argv", ["docshift", "alerts", "setup"])

    with pytest.raises(SystemExit) as exit_:
        cli.main()

    assert exit_.value.code == 1
    assert capsys.readouterr().err == ("docshift: error: no alert URL: set DOCSHIFT_ALERT_URL to it, or DOCSHIFT_ALERT_SECRET "
                                       "to the name of a Prefect Secret block holding it\n")
