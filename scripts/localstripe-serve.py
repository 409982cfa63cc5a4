"""Runs localstripe (a stateful fake of Stripe's API) for local runs and tests.

localstripe's own command listens on every interface and keeps its state in the fixed file
/tmp/localstripe.pickle, which two instances would share. This starts the same application
on 127.0.0.1 only (or --host), with its state in a file of its own:

    python localstripe-serve.py --port 8420 --state .state/localstripe/state.pickle
    python localstripe-serve.py --port 0 ...   (a free port, printed as "listening on PORT")

Without --state the instance keeps nothing across restarts.
"""

import argparse
import asyncio
import pickle
import socket

from aiohttp import web
from localstripe import resources
from localstripe.server import app


def keep_state_in(path):
    def load(store):
        try:
            with open(path, "rb") as f:
                old = pickle.load(f)
        except FileNotFoundError:
            return
        store.clear()
        store.update(old)

    def dump(store):
        with open(path, "wb") as f:
            pickle.dump(dict(store), f, protocol=pickle.HIGHEST_PROTOCOL)

    resources.Store.try_load_from_disk = load
    resources.Store.dump_to_disk = dump


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8420)
    parser.add_argument("--state", help="file that keeps the state across restarts")
    args = parser.parse_args()

    if args.state:
        keep_state_in(args.state)
        resources.store.try_load_from_disk()
    else:
        resources.Store.dump_to_disk = lambda store: None

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    print(f"listening on {sock.getsockname()[1]}", flush=True)
    web.run_app(app, sock=sock, print=None, access_log=None)


if __name__ == "__main__":
    main()
