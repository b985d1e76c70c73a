"""Devices: pairing (a link's proof, or a typed code's OPAQUE login), who-am-I, list and revoke."""

from __future__ import annotations

import hmac

from quart import Blueprint, current_app
from quart_rate_limiter import rate_limit
from quart_schema import validate_request, validate_response

from ..auth.device_names import check_device_name
from .gate import current_device_id, verify_device_signature
from ..jwk import JwkError, parse_p256_public_jwk, thumbprint
from ..auth.pairing import PairingError, key_confirmation
from ..auth.pake import device_proof
from ..auth.pake import key_confirmation as login_confirmation
from ..errors import (DEVICE_EXISTS, DEVICE_UNKNOWN, INVALID_PUBLIC_KEY, INVALID_REQUEST, PAIRING_INVALID, CodedError,
                      NotFound)
from .ratelimits import registration_limit
from .schemas import DeviceList, DeviceRecord, PairingStarted, RegisterDevice, RegisteredDevice, StartPairing
from .sealed import opened_kid

blueprint = Blueprint("devices", __name__)

async def signing_key(public_key: dict) -> tuple[dict[str, str], str]:
    """The key a pairing request registers (or will), after checking the request is signed by it."""
    try:
        public_members, key = parse_p256_public_jwk(public_key)
    except JwkError as exc:
        raise CodedError(INVALID_PUBLIC_KEY, reason=exc) from exc
    device_id = thumbprint(public_members)
    await verify_device_signature(registering_key=(device_id, key))
    return public_members, device_id


@blueprint.post("/api/auth/pairing")  # signed by the key it registers (pipeline.py lists it)
@rate_limit(limits=registration_limit)
@validate_request(StartPairing)
@validate_response(PairingStarted)
async def start_pairing(data: StartPairing) -> PairingStarted:
    """A typed code's OPAQUE login, first step (auth/pake.py): it counts as a wrong try until the
    registration that finishes it succeeds, so a guess made from its answer is an online guess."""
    state = current_app.extensions["privchat"]
    _members, device_id = await signing_key(data.public_key)
    if await state.devices.get(device_id) is not None:
        raise CodedError(DEVICE_EXISTS)
    code, code_hash, attempt_id = await state.pairing.begin_login()
    pairing_id, response = await state.logins.start(code, code_hash, data.request, attempt_id)
    return PairingStarted(pairing_id=pairing_id, response=response)


@blueprint.post("/api/auth/device")  # signed by the key it registers (pipeline.py lists it)
@rate_limit(limits=registration_limit)
@validate_request(RegisterDevice)
async def register_device(data: RegisterDevice) -> tuple[RegisteredDevice, int]:
    """Proof of possession: the request is signed by the key it registers, sealed to the server key,
    and proves knowledge of a one-time code without sending it (docs/E2E.md, "Pairing"): by an
    HMAC keyed by the code (a link, which pinned the key) or by a finished OPAQUE login (a typed code)."""
    state = current_app.extensions["privchat"]
    typed = data.pairing_id is not None or data.finalization is not None or data.device_proof is not None
    if typed == (data.pairing_proof is not None) or (typed and not (data.pairing_id and data.finalization and data.device_proof)):
        raise CodedError(INVALID_REQUEST)
    public_members, device_id = await signing_key(data.public_key)
    # Before the code is touched: a refused name neither uses it up nor counts as a wrong try.
    name = check_device_name(data.name.strip() or "Device")
    if await state.devices.get(device_id) is not None:
        raise CodedError(DEVICE_EXISTS)
    login = None
    if typed:
        login = state.logins.finish(data.pairing_id, data.finalization)  # pairing_invalid: the start's try stays counted
        if not hmac.compare_digest(device_proof(login[0], device_id, opened_kid()), data.device_proof or ""):
            raise PairingError(PAIRING_INVALID)  # another device, or a key swapped on the path: the try stays counted
    failure: PairingError | None = None
    already = False
    async with state.database.transaction() as conn:
        # Asked again under the write lock: the same key sent twice at once (two codes) passes the
        # look-up above twice, and the second insert would break the primary key (a 500). This way
        # it is a 409, and its code is left unused.
        if await state.devices.registered(conn, device_id):
            already = True
        else:
            try:
                if login is not None:
                    await state.pairing.redeem_login(conn, login[1], login[2])
                else:
                    code = await state.pairing.redeem(conn, data.pairing_proof or "", device_id, opened_kid())
            except PairingError as exc:
                failure = exc  # commit anyway: the wrong try must count
            else:
                device = await state.devices.add(conn, device_id, name, public_members)
    if already:
        raise CodedError(DEVICE_EXISTS)
    if failure is not None:
        raise failure
    if login is not None:
        state.logins.forget_code(login[1])
        confirmation = login_confirmation(login[0], device_id, opened_kid())
    else:
        confirmation = key_confirmation(code, device_id, opened_kid())
    return RegisteredDevice(**device.to_json(), key_confirmation=confirmation), 201


@blueprint.get("/api/auth/device")
@validate_response(DeviceRecord)
async def who_am_i() -> DeviceRecord:
    device = await current_app.extensions["privchat"].devices.get(current_device_id())
    if device is None:  # deleted between the gate and here: say so rather than fail
        raise CodedError(DEVICE_UNKNOWN)
    return DeviceRecord(**device.to_json())


@blueprint.get("/api/devices")
@validate_response(DeviceList)
async def list_devices() -> DeviceList:
    devices = await current_app.extensions["privchat"].devices.list()
    return DeviceList(devices=[DeviceRecord(**d.to_json()) for d in devices])


@blueprint.delete("/api/devices/<device_id>")
@validate_response(DeviceRecord)
async def revoke_device(device_id: str) -> DeviceRecord:
    state = current_app.extensions["privchat"]
    if await state.devices.get(device_id) is None:
        raise NotFound("device")
    return DeviceRecord(**(await state.devices.revoke(device_id)).to_json())
