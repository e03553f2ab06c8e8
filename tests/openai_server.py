"""A real HTTP server on 127.0.0.1 that speaks the OpenAI chat-completions
API with image inputs, for tests of cluster naming through the real
``openai`` client. It records every request (model, prompt, the images
decoded) and answers as the test programs it."""

import base64
import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
from PIL import Image


class Request:
    """One request as the server saw it."""

    def __init__(self, body, headers):
        self.body = body
        self.headers = headers
        self.model = body.get("model")
        content = body["messages"][-1]["content"]
        self.text = " ".join(part["text"] for part in content
                             if part.get("type") == "text")
        self.images = []
        self.formats = []
        # The images after each "Group i:" text, for requests that show
        # several groups.
        self.groups = []
        for part in content:
            if part.get("type") == "text" and \
                    part["text"].startswith("Group "):
                self.groups.append([])
            if part.get("type") != "image_url":
                continue
            url = part["image_url"]["url"]
            head, data = url.split(",", 1)
            self.formats.append(head)
            image = Image.open(io.BytesIO(base64.b64decode(data))).convert("L")
            self.images.append(image)
            if self.groups:
                self.groups[-1].append(image)

    @property
    def brightness(self):
        return _brightness(self.images)


def _brightness(images):
    return float(np.mean([np.asarray(im).mean() for im in images]))


def brightness_name(request):
    """Names a cluster after how bright its images are; asked to tell
    groups apart, adds each group's mean grey level."""
    if request.groups:
        return json.dumps({"groups": [
            {"name": f"{_level(_brightness(g))} images, grey "
                     f"{_brightness(g):.0f}",
             "description": "Grey images of one level."}
            for g in request.groups]})
    level = _level(request.brightness)
    return json.dumps({"name": f"{level} images",
                       "description": f"Mostly {level} grey images."})


def _level(brightness):
    return "bright" if brightness > 127 else "dark"


class FakeOpenAI:
    """The server. ``answer(request, n)`` returns the reply text, or a
    ``(status, headers, body)`` tuple for an error; ``n`` counts requests
    so far. Between :meth:`hold` and :meth:`release` (or :meth:`close`),
    requests wait unanswered."""

    def __init__(self, answer=brightness_name):
        self.answer = answer
        self.requests = []
        self._open = threading.Event()
        self._open.set()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                request = Request(body, dict(self.headers))
                with server._lock:
                    server.requests.append(request)
                    n = len(server.requests)
                server._open.wait()
                reply = server.answer(request, n) if \
                    server.answer.__code__.co_argcount == 2 else \
                    server.answer(request)
                if isinstance(reply, tuple):
                    status, headers, payload = reply
                else:
                    status, headers, payload = 200, {}, _completion(
                        request.model, reply)
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       daemon=True)
        self.thread.start()

    def hold(self):
        """Requests from now on wait, unanswered, until :meth:`release`."""
        self._open.clear()

    def release(self):
        self._open.set()

    def close(self):
        self.release()
        self.httpd.shutdown()
        self.httpd.server_close()


def _completion(model, text):
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1,
                  "total_tokens": 2},
    }


def error(status, message, headers=None):
    return (status, headers or {},
            {"error": {"message": message, "type": "test", "code": status}})
