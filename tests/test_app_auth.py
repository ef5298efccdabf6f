"""With G2RPO_PASSWORD set, launching, cancelling and deleting need a login; watching does not."""
import pytest
from gradio_client import Client

from tests.test_app_api import PRESET, form


def test_actions_need_the_password_and_viewing_does_not(app_server, monkeypatch):
    monkeypatch.setenv("G2RPO_PASSWORD", "s3cret")  # read at each request
    client = Client(app_server["url"], verbose=False)
    try:
        runs = client.predict(api_name="/runs")  # open to everyone
        with pytest.raises(Exception, match="Log in first"):
            client.predict(PRESET, "guarded", *form(), api_name="/submit")
        for action in ("/cancel", "/delete", "/resume"):
            with pytest.raises(Exception, match="Log in first"):
                client.predict(999_999, api_name=action)
        with pytest.raises(Exception, match="Log in first"):  # a push writes with the app's token
            client.predict(999_999, "someone/a-lora", api_name="/push")
        assert client.predict("wrong", api_name="/login") == "Wrong password."
        with pytest.raises(Exception, match="Log in first"):
            client.predict(999_999, api_name="/cancel")
        assert client.predict("s3cret", api_name="/login").startswith("Logged in")
        with pytest.raises(Exception, match="no run 999999"):  # past the guard: the request itself is checked
            client.predict(999_999, api_name="/cancel")
        assert client.predict(api_name="/runs") == runs  # nothing was queued
    finally:
        client.close()
