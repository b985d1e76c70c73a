"""Devices: registration with a pairing code, who-am-I, list and revoke."""

from __future__ import annotations

from quart import Blueprint, current_app
from quart_rate_limiter import rate_limit
from quart_schema import validate_request, validate_response

from ..auth.device_names import check_device_name
from ..auth.gate import current_device_id, signed_by_new_key, verify_device_signature
from ..auth.jwk import JwkError, parse_p256_public_jwk, thumbprint
from ..auth.pairing import PairingError, key_confirmation
from ..errors import ApiError
from .ratelimits import registration_limit
from .schemas import DeviceList, DeviceRecord, RegisterDevice, RegisteredDevice
from .sealed import opened_kid

blueprint = Blueprint("devices", __name__)

DEVICE_EXISTS = "This key is already registered; the page should use it instead of pairing again."


@blueprint.post("/api/auth/device")
@signed_by_new_key
@rate_limit(limits=registration_limit)
@validate_request(RegisterDevice)
async def register_device(data: RegisterDevice) -> tuple[RegisteredDevice, int]:
    """Proof of possession: the request is signed by the key it registers, sealed to the server key,
    and proves knowledge of a one-time code without sending it (docs/E2E.md, "Pairing")."""
    state = current_app.extensions["privchat"]
    try:
        public_members, key = parse_p256_public_jwk(data.public_key)
    except JwkError as exc:
        raise ApiError(400, "invalid_public_key", f"The device key was refused: {exc}.") from exc
    device_id = thumbprint(public_members)
    await verify_device_signature(registering_key=(device_id, key))
    # Before the code is touched: a refused name neither uses it up nor counts as a wrong try.
    name = check_device_name(data.name.strip() or "Device")
    if await state.devices.get(device_id) is not None:
        raise ApiError(409, "device_exists", DEVICE_EXISTS)
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
                code = await state.pairing.redeem(conn, data.pairing_proof, device_id, opened_kid())
            except PairingError as exc:
                failure = exc  # commit anyway: the wrong try must count
            else:
                device = await state.devices.add(conn, device_id, name, public_members)
    if already:
        raise ApiError(409, "device_exists", DEVICE_EXISTS)
    if failure is not None:
        raise failure
    confirmation = key_confirmation(code, device_id, opened_kid())
    return RegisteredDevice(**device.to_json(), key_confirmation=confirmation), 201


@blueprint.get("/api/auth/device")
@validate_response(DeviceRecord)
async def who_am_i() -> DeviceRecord:
    device = await current_app.extensions["privchat"].devices.get(current_device_id())
    if device is None:  # deleted between the gate and here: say so rather than fail
        raise ApiError(401, "device_unknown", "This device is not paired with the server.")
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
        raise ApiError(404, "not_found", "There is no device with that id.")
    return DeviceRecord(**(await state.devices.revoke(device_id)).to_json())
