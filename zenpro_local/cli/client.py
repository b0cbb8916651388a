"""A small blocking client of the admin API for the command line."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any


class ApiCallError(Exception):
    """The API answered an error; ``status`` and ``message`` come from it."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class ConnectionFailed(Exception):
    """The daemon could not be reached."""


@dataclass
class Client:
    url: str
    token: str | None
    timeout: float = 30.0

    def call(self, method: str, path: str, body: dict | None = None) -> Any:
        """Send one request and return the decoded JSON body (None for 204).

        Raises:
            ApiCallError: for an HTTP error status.
            ConnectionFailed: when the daemon does not answer.
        """
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url.rstrip("/") + path, data=data, method=method
        )
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as error:
            raise _api_error(error) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise ConnectionFailed(
                f"cannot reach the daemon at {self.url}: {reason}; is it running? "
                "(check --url)"
            ) from None
        return json.loads(raw) if raw else None

    def get(self, path: str) -> Any:
        return self.call("GET", path)

    def post(self, path: str, body: dict | None = None) -> Any:
        return self.call("POST", path, body if body is not None else {})

    def patch(self, path: str, body: dict) -> Any:
        return self.call("PATCH", path, body)

    def delete(self, path: str) -> Any:
        return self.call("DELETE", path)


def _api_error(error: urllib.error.HTTPError) -> ApiCallError:
    try:
        detail = json.loads(error.read())["error"]
        return ApiCallError(error.code, detail["code"], detail["message"])
    except (ValueError, KeyError, TypeError):
        return ApiCallError(error.code, "http_error", f"HTTP {error.code} {error.reason}")
