"""The LiteFlow dashboard: a web view of the workflows in a store, with controls.

``create_app(store=URL)`` or ``create_app(host=host)`` returns a Starlette ASGI application:
serve it with ``liteflow dashboard`` (uvicorn), or mount it in your own Starlette or FastAPI
application. Needs ``pip install "liteflow-engine[dashboard]"``.
"""

from ._app import create_app

__all__ = ["create_app"]
