"""The simulated estate: sites with trading hours and time zones, and the devices at each site.

The UK pilot of HOMEPOT is food and restaurant retail, so most sites are restaurants, cafes and
quick-service outlets in British cities, with a few in Dublin, Paris and Amsterdam to exercise
other time zones. Every site has a weekly trading schedule (local times) with peaks; every
device has a type, a human name ("POS-03 Camden High St"), firmware, an age and the covariates
the failure hazard depends on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

ID_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"

# name, town/postcode, lat, lon, tz
_UK_PLACES: tuple[tuple[str, str, float, float], ...] = (
    ("Camden High St", "Camden High Street, London NW1", 51.5390, -0.1426),
    ("Leeds Trinity", "Trinity Leeds, Albion Street, Leeds LS1", 53.7963, -1.5448),
    ("Manchester Piccadilly", "Piccadilly Station, Manchester M1", 53.4774, -2.2309),
    ("Birmingham Bullring", "Bullring, Birmingham B5", 52.4777, -1.8936),
    ("Bristol Cabot Circus", "Cabot Circus, Bristol BS1", 51.4584, -2.5845),
    ("Liverpool ONE", "Paradise Street, Liverpool L1", 53.4027, -2.9867),
    ("Glasgow Buchanan St", "Buchanan Street, Glasgow G1", 55.8616, -4.2541),
    ("Edinburgh Princes St", "Princes Street, Edinburgh EH2", 55.9521, -3.1965),
    ("Cardiff Queen St", "Queen Street, Cardiff CF10", 51.4816, -3.1751),
    ("Newcastle Grainger", "Grainger Street, Newcastle NE1", 54.9716, -1.6149),
    ("Nottingham Old Market Sq", "Old Market Square, Nottingham NG1", 52.9530, -1.1498),
    ("Sheffield Meadowhall", "Meadowhall Centre, Sheffield S9", 53.4142, -1.4125),
    ("Brighton North Laine", "Gardner Street, Brighton BN1", 50.8245, -0.1384),
    ("Oxford Cornmarket", "Cornmarket Street, Oxford OX1", 51.7527, -1.2588),
    ("Cambridge Grand Arcade", "Grand Arcade, Cambridge CB2", 52.2040, 0.1206),
    ("York Coney St", "Coney Street, York YO1", 53.9599, -1.0836),
    ("Bath Southgate", "SouthGate, Bath BA1", 51.3785, -2.3593),
    ("Reading Oracle", "The Oracle, Reading RG1", 51.4535, -0.9703),
    ("Milton Keynes Centre:MK", "Midsummer Boulevard, Milton Keynes MK9", 52.0431, -0.7600),
    ("Southampton WestQuay", "WestQuay, Southampton SO15", 50.9053, -1.4068),
    ("Norwich Chapelfield", "Chapelfield, Norwich NR2", 52.6271, 1.2918),
    ("Leicester Highcross", "Highcross, Leicester LE1", 52.6384, -1.1379),
    ("Belfast Victoria Sq", "Victoria Square, Belfast BT1", 54.5987, -5.9262),
    ("London Kings Cross", "Kings Cross Station, London N1C", 51.5320, -0.1233),
    ("London Canary Wharf", "Canada Place, London E14", 51.5049, -0.0195),
    ("London Soho", "Old Compton Street, London W1D", 51.5133, -0.1318),
    ("London Shoreditch", "Shoreditch High Street, London E1", 51.5245, -0.0777),
    ("London Clapham Junction", "St John's Road, London SW11", 51.4627, -0.1680),
    ("London Stratford", "Westfield Stratford City, London E20", 51.5431, -0.0066),
    ("Heathrow T5", "Terminal 5, Heathrow TW6", 51.4723, -0.4887),
    ("Gatwick North", "North Terminal, Gatwick RH6", 51.1613, -0.1770),
    ("Manchester Arndale", "Arndale Centre, Manchester M4", 53.4838, -2.2395),
    ("Leeds Kirkgate", "Kirkgate Market, Leeds LS2", 53.7976, -1.5396),
    ("Exeter Princesshay", "Princesshay, Exeter EX1", 50.7253, -3.5296),
    ("Plymouth Drake Circus", "Drake Circus, Plymouth PL4", 50.3740, -4.1380),
    ("Aberdeen Union Sq", "Union Square, Aberdeen AB11", 57.1436, -2.0969),
    ("Swansea Quadrant", "Quadrant Centre, Swansea SA1", 51.6180, -3.9430),
    ("Stoke Hanley", "Hanley, Stoke-on-Trent ST1", 53.0246, -2.1763),
    ("Coventry Cathedral Lanes", "Broadgate, Coventry CV1", 52.4081, -1.5106),
    ("Canterbury Whitefriars", "Whitefriars, Canterbury CT1", 51.2774, 1.0801),
)
_OTHER_PLACES: tuple[tuple[str, str, float, float, str], ...] = (
    ("Dublin Grafton St", "Grafton Street, Dublin 2", 53.3409, -6.2605, "Europe/Dublin"),
    ("Cork Patrick St", "St Patrick's Street, Cork", 51.8985, -8.4737, "Europe/Dublin"),
    ("Paris Gare du Nord", "Gare du Nord, 75010 Paris", 48.8809, 2.3553, "Europe/Paris"),
    ("Paris Chatelet", "Forum des Halles, 75001 Paris", 48.8622, 2.3464, "Europe/Paris"),
    ("Amsterdam Centraal", "Stationsplein, 1012 Amsterdam", 52.3791, 4.9003, "Europe/Amsterdam"),
)

#: Site formats: weekday open/close, Friday/Saturday close, Sunday open/close, peaks, basket GBP.
SITE_FORMATS: dict[str, dict] = {
    "restaurant": {"open": 11.5, "close": 22.5, "late_close": 23.5, "sun": (12.0, 21.5),
                   "peaks": ((12.5, 1.0, 0.8), (19.25, 1.4, 1.0)), "basket": 31.0, "weekend": 1.35},
    "cafe": {"open": 7.0, "close": 18.0, "late_close": 18.0, "sun": (8.0, 17.0),
             "peaks": ((8.25, 0.9, 0.9), (12.75, 1.1, 0.8), (15.5, 1.2, 0.4)), "basket": 7.2, "weekend": 1.15},
    "quick_service": {"open": 7.5, "close": 23.0, "late_close": 24.0, "sun": (9.0, 22.0),
                      "peaks": ((12.75, 1.2, 1.0), (18.5, 1.5, 0.8)), "basket": 11.5, "weekend": 1.2},
    "retail": {"open": 9.0, "close": 20.0, "late_close": 20.0, "sun": (11.0, 17.0),
               "peaks": ((13.0, 2.0, 0.8), (17.5, 1.5, 0.7)), "basket": 18.0, "weekend": 1.3},
}
BRANDS = {"restaurant": "Trattoria", "cafe": "Coffee House", "quick_service": "Kitchen", "retail": "Market"}

#: Firmware by type, oldest first; versions in BAD_FIRMWARE raise the failure hazard.
FIRMWARE: dict[str, tuple[str, ...]] = {
    "pos_terminal": ("3.8.2", "4.1.0", "4.2.1", "4.3.0"),
    "iot_sensor": ("1.9.4", "2.0.3", "2.1.0"),
    "gateway": ("7.4.11", "7.6.2", "8.0.1"),
    "industrial_controller": ("11.2", "12.0", "12.1"),
    "unknown": ("0.9.1", "1.0.0"),
}
BAD_FIRMWARE: frozenset[str] = frozenset({"4.2.1", "2.0.3", "7.6.2", "12.0"})
OS_DETAILS = {
    "pos_terminal": ("Android 11 (POS build)", "Windows 10 IoT Enterprise LTSC", "Ubuntu 22.04 LTS"),
    "iot_sensor": ("Zephyr RTOS 3.4", "FreeRTOS 10.5"),
    "gateway": ("OpenWrt 23.05", "Ubuntu Core 22"),
    "industrial_controller": ("CODESYS Control RTE 3.5", "Linux 5.10 RT"),
    "unknown": ("Linux 4.19", None),
}
SENSOR_ROLES = (("Freezer sensor", -19.0), ("Fridge sensor", 3.5), ("Ambient sensor", 21.0), ("Hot-hold sensor", 68.0))
CONTROLLER_ROLES = ("Coffee machine controller", "Combi oven controller", "HVAC controller", "Dishwasher controller")
UNKNOWN_ROLES = ("Unidentified device", "Legacy kiosk", "Digital menu board")


def public_id(rng: np.random.Generator, groups: tuple[int, ...], prefix: str) -> str:
    """``SITE-XXXX-XXXX`` / ``DEVICE-XXXX-XXXX-XXXX`` from HOMEPOT's unambiguous alphabet."""
    idx = rng.integers(0, len(ID_ALPHABET), size=sum(groups))
    chars = [ID_ALPHABET[i] for i in idx]
    parts, pos = [], 0
    for g in groups:
        parts.append("".join(chars[pos : pos + g]))
        pos += g
    return "-".join([prefix, *parts])


@dataclass
class SiteSpec:
    index: int
    site_id: str
    name: str
    location: str
    latitude: float
    longitude: float
    tz: str
    format: str
    busyness: float  # multiplies transaction rates
    ambient_c: float  # back-of-house temperature (kitchens run warm)
    latency_ms: float  # baseline WAN latency
    schedule: list[dict] = field(default_factory=list)  # 7 rows, day_of_week 0 = Monday


@dataclass
class DeviceSpec:
    index: int
    device_id: str
    name: str
    device_type: str
    site: SiteSpec
    firmware: str
    os: str | None
    age_days: float  # at the start of the simulated window
    role: str
    setpoint_c: float  # sensors: what they measure; others: unused
    capacity: float  # share of the site's transactions (POS), load factor otherwise
    ip: str
    mac: str
    memory_total_mb: int
    disk_total_gb: int


def _hours_to_hhmm(h: float) -> str:
    h = h % 24
    return f"{int(h):02d}:{int(round((h - int(h)) * 60)) % 60:02d}"


def _schedule(fmt: dict, busyness: float) -> list[dict]:
    rows = []
    for dow in range(7):
        if dow == 6:
            open_h, close_h = fmt["sun"]
        else:
            open_h = fmt["open"]
            close_h = fmt["late_close"] if dow in (4, 5) else fmt["close"]
        main_peak = max(fmt["peaks"], key=lambda p: p[2])
        weight = fmt["weekend"] if dow in (4, 5, 6) else 1.0
        rows.append({
            "day_of_week": dow,
            "open_time": _hours_to_hhmm(open_h),
            "close_time": _hours_to_hhmm(close_h),
            "open_h": open_h,
            "close_h": close_h,
            "is_closed": False,
            "is_maintenance_window": False,
            "expected_transaction_volume": int(round(420 * busyness * weight * (close_h - open_h) / 11)),
            "peak_hours_start": _hours_to_hhmm(main_peak[0] - main_peak[1]),
            "peak_hours_end": _hours_to_hhmm(main_peak[0] + main_peak[1]),
        })
    return rows


def build_sites(rng: np.random.Generator, n_sites: int) -> list[SiteSpec]:
    """Pick ``n_sites`` places (mostly UK, about one in eight abroad) and give each a format."""
    n_other = min(len(_OTHER_PLACES), max(0, int(round(n_sites / 8)))) if n_sites >= 4 else 0
    n_uk = n_sites - n_other
    uk_order = rng.permutation(len(_UK_PLACES))
    places: list[tuple[str, str, float, float, str]] = []
    for i in range(n_uk):
        name, loc, lat, lon = _UK_PLACES[uk_order[i % len(_UK_PLACES)]]
        name = name.split(":")[0]
        if i >= len(_UK_PLACES):
            name = f"{name} {i // len(_UK_PLACES) + 1}"
        places.append((name, loc, lat, lon, "Europe/London"))
    other_order = rng.permutation(len(_OTHER_PLACES))
    places += [_OTHER_PLACES[j] for j in other_order[:n_other]]
    formats = list(SITE_FORMATS)
    fmt_p = np.array([0.4, 0.25, 0.25, 0.1])
    sites = []
    seen: set[str] = set()
    for i, (name, loc, lat, lon, tz) in enumerate(places):
        fmt = formats[int(rng.choice(len(formats), p=fmt_p))]
        sid = public_id(rng, (4, 4), "SITE")
        while sid in seen:
            sid = public_id(rng, (4, 4), "SITE")
        seen.add(sid)
        busy = float(rng.lognormal(0.0, 0.3))
        site = SiteSpec(
            index=i, site_id=sid, name=name, location=loc, latitude=lat, longitude=lon, tz=tz,
            format=fmt, busyness=busy, ambient_c=float(rng.uniform(19.0, 23.0) + (3.0 if fmt != "retail" else 0.0)),
            latency_ms=float(rng.uniform(14, 38) + (12 if tz != "Europe/London" else 0)),
        )
        site.schedule = _schedule(SITE_FORMATS[fmt], busy)
        sites.append(site)
    return sites


def _type_mix(rng: np.random.Generator, n: int) -> list[str]:
    """Per-site device types: POS tills first, then sensors, a gateway, maybe a controller."""
    types = ["gateway"]
    n_pos = int(rng.integers(3, 7))
    types += ["pos_terminal"] * n_pos
    types += ["iot_sensor"] * int(rng.integers(1, 4))
    if rng.random() < 0.5:
        types.append("industrial_controller")
    if rng.random() < 0.12:
        types.append("unknown")
    # a site smaller than its mix keeps POS first: the product is about tills
    order = sorted(types, key=lambda t: {"pos_terminal": 0, "gateway": 1, "iot_sensor": 2,
                                         "industrial_controller": 3, "unknown": 4}[t])
    return order[:n] if n < len(order) else order


def build_fleet(rng: np.random.Generator, n_devices: int) -> tuple[list[SiteSpec], list[DeviceSpec]]:
    """Sites and devices for a fleet of ``n_devices`` (about eight devices a site)."""
    if n_devices < 1:
        raise ValueError("a simulated fleet needs at least one device")
    n_sites = max(1, int(round(n_devices / 8)))
    sites = build_sites(rng, n_sites)
    per_site = np.full(n_sites, n_devices // n_sites)
    per_site[: n_devices % n_sites] += 1
    devices: list[DeviceSpec] = []
    seen: set[str] = set()
    for site, count in zip(sites, per_site.tolist()):
        mix = _type_mix(rng, count)
        while len(mix) < count:
            mix.append(str(rng.choice(["pos_terminal", "pos_terminal", "iot_sensor", "industrial_controller"])))
        counters: dict[str, int] = {}
        for dtype in mix:
            counters[dtype] = counters.get(dtype, 0) + 1
            k = counters[dtype]
            setpoint = 0.0
            if dtype == "pos_terminal":
                role = "POS"
                name = f"POS-{k:02d} {site.name}"
            elif dtype == "iot_sensor":
                role, setpoint = SENSOR_ROLES[int(rng.choice(len(SENSOR_ROLES), p=[0.35, 0.35, 0.2, 0.1]))]
                name = f"{role} {k} {site.name}"
            elif dtype == "gateway":
                role = "Gateway"
                name = f"Gateway {site.name}" if k == 1 else f"Gateway {k} {site.name}"
            elif dtype == "industrial_controller":
                role = CONTROLLER_ROLES[int(rng.integers(len(CONTROLLER_ROLES)))]
                name = f"{role} {site.name}"
            else:
                role = UNKNOWN_ROLES[int(rng.integers(len(UNKNOWN_ROLES)))]
                name = f"{role} {site.name}"
            fw_list = FIRMWARE[dtype]
            fw_p = np.linspace(1.0, 2.5, len(fw_list))
            firmware = fw_list[int(rng.choice(len(fw_list), p=fw_p / fw_p.sum()))]
            os_list = OS_DETAILS[dtype]
            did = public_id(rng, (4, 4, 4), "DEVICE")
            while did in seen:
                did = public_id(rng, (4, 4, 4), "DEVICE")
            seen.add(did)
            subnet = 10 + site.index % 200
            mac_tail = rng.integers(0, 256, size=3)
            devices.append(DeviceSpec(
                index=len(devices), device_id=did, name=name[:100], device_type=dtype, site=site,
                firmware=firmware, os=os_list[int(rng.integers(len(os_list)))],
                age_days=float(rng.gamma(2.2, 330.0)) + 20.0, role=role, setpoint_c=setpoint,
                capacity=float(rng.uniform(0.7, 1.3)),
                ip=f"10.{subnet}.{1 + site.index // 200}.{20 + counters[dtype] * 10 + len(devices) % 10}",
                mac="00:1B:44:" + ":".join(f"{int(b):02X}" for b in mac_tail),
                memory_total_mb=int(rng.choice([2048, 4096, 8192], p=[0.2, 0.5, 0.3])) if dtype == "pos_terminal"
                else int(rng.choice([256, 512, 1024])),
                disk_total_gb=int(rng.choice([32, 64, 128])) if dtype == "pos_terminal" else int(rng.choice([4, 8, 16])),
            ))
    return sites, devices
