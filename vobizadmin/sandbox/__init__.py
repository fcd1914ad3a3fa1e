"""An in-process stand-in for the Vobiz Endpoint and Application API.

Serves the contract in ../shared/vobiz/CONTRACT.md over real HTTP (standard library only) so
the dashboard, its tests and benchmarks never need the live API. Nothing in ``endpoints/`` may
import it.
"""
