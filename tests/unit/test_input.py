"""What the API takes: the message's rules, the JSON parser and the body's size limit, without
a running service (through the live API: tests/integration/test_bad_input.py)."""

import io
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.handlers.wsgi import WSGIRequest
from django.test import SimpleTestCase
from rest_framework.exceptions import ParseError, ValidationError

from relay_app.api.errors import exception_handler
from relay_app.api.parsers import JSONParser, max_body_bytes
from relay_app.api.serializers import RelayInputSerializer, idempotency_key


def parse(body: bytes) -> Any:
    return JSONParser().parse(io.BytesIO(body), "application/json", {})


def errors(data: Any) -> dict[str, list[str]]:
    serializer = RelayInputSerializer(data=data)
    return {} if serializer.is_valid() else dict(serializer.errors)


class MessageRulesTests(SimpleTestCase):
    def test_a_message_is_a_string_with_something_in_it_within_the_limit(self) -> None:
        limit = settings.RELAY_MESSAGE_MAX_LENGTH
        self.assertEqual(errors({"message": "hello"}), {})
        self.assertEqual(errors({"message": "é" * limit}), {})
        refused = {
            "missing": {},
            "null": {"message": None},
            "a number": {"message": 42},
            "a list": {"message": ["hello"]},
            "an object": {"message": {"text": "hello"}},
            "empty": {"message": ""},
            "only whitespace": {"message": " \n\t\u3000"},
            "too long": {"message": "x" * (limit + 1)},
            "a NUL character": {"message": "a\x00b"},
            "a lone surrogate": {"message": "a\ud800"},
        }
        for case, data in refused.items():
            with self.subTest(case):
                self.assertIn("message", errors(data))
        self.assertEqual(errors({"message": 42})["message"], ["Must be a string, not int."])
        too_long = errors({"message": "x" * (limit + 1)})["message"][0]
        self.assertIn(f"no more than {limit} characters", too_long)

    def test_any_other_field_is_refused_by_name(self) -> None:
        self.assertEqual(
            errors({"message": "hi", "priority": 1}),
            {"priority": ["Unknown field: only 'message' is accepted."]},
        )
        self.assertIn("non_field_errors", errors(["hello"]))

    def test_a_misspelt_field_is_named_beside_the_missing_one(self) -> None:
        self.assertEqual(
            errors({"mesage": "y"}),
            {
                "message": ["This field is required."],
                "mesage": ["Unknown field (did you mean 'message'?): only 'message' is accepted."],
            },
        )
        both = errors({"message": " ", "Message": "y", "extra": 1})
        self.assertEqual(list(both), ["message", "Message", "extra"])

    def test_an_idempotency_key_is_1_to_255_visible_ascii_characters(self) -> None:
        self.assertIsNone(idempotency_key({}))
        self.assertIsNone(idempotency_key({"Idempotency-Key": ""}))
        self.assertEqual(idempotency_key({"Idempotency-Key": "order-1"}), "order-1")
        for key in ("x" * 256, "with space", "clé"):
            with self.subTest(key=key), self.assertRaises(ValidationError):
                idempotency_key({"Idempotency-Key": key})


class JsonParserTests(SimpleTestCase):
    def test_json_is_read_as_json(self) -> None:
        self.assertEqual(parse(b'{"message": "hello"}'), {"message": "hello"})

    def test_what_python_cannot_read_is_a_parse_error_not_a_crash(self) -> None:
        for case, body in {
            "nested too deeply": b"[" * 50_000 + b"]" * 50_000,
            "a number with thousands of digits": b"9" * 5000,
            "NaN": b'{"message": NaN}',
            "not UTF-8": b'{"message": "caf\xe9"}',
            "truncated": b'{"message": "hel',
        }.items():
            with self.subTest(case), self.assertRaises(ParseError):
                parse(body)

    def test_a_body_larger_than_any_message_is_refused_unread(self) -> None:
        limit = max_body_bytes()
        self.assertEqual(limit, settings.RELAY_MESSAGE_MAX_LENGTH * 12 + 4096)
        request = WSGIRequest(
            {
                "REQUEST_METHOD": "POST",
                "PATH_INFO": "/api/relay/",
                "CONTENT_TYPE": "application/json",
                "CONTENT_LENGTH": str(limit + 1),
                "wsgi.input": Unreadable(),
            }
        )
        with self.assertRaises(RequestDataTooBig) as raised:
            request.body  # noqa: B018 - what DRF reads first
        answer = exception_handler(raised.exception, {"request": request})
        assert answer is not None
        self.assertEqual(answer.status_code, 413)
        self.assertIn(f"at most {limit}", answer.data["detail"])


class Unreadable(io.RawIOBase):
    """A request body that must not be read."""

    def readinto(self, buffer: Any) -> int:
        raise AssertionError("the body was read")
