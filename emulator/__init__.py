"""A local, faithful stand-in for the Huawei Cloud ModelArts inference-services API and an IAM token endpoint.

It serves a simulated fleet (deterministic for a seed) on the v1 and the v2 service API (each service lives on
one generation or both, ``generations.py``) that can churn through the services' state machines,
with fault injection and switchable spec quirks, for the test suite, the demo and the benchmarks. It is an
independent reading of ``spec/``: nothing here imports ``core``, ``bot``, ``tools`` or ``services_bot``.

    with EmulatorServer(EmulatorSettings(port=0, services=1000)) as emu:
        httpx.get(f"{emu.url}/v1/{emu.settings.project_id}/services", headers={"X-Auth-Token": emu.settings.token})
"""

from services_bot.emulator.app import create_app
from services_bot.emulator.server import EmulatorServer, run
from services_bot.emulator.settings import EmulatorSettings, add_arguments, settings_from_args

__all__ = ["EmulatorServer", "EmulatorSettings", "add_arguments", "create_app", "run", "settings_from_args"]
