"""SQLAlchemy 2.0 models: HOMEPOT's tables by name and column, plus our own ``ai_*`` tables.

The HOMEPOT tables mirror ``shared/homepot/SCHEMA.md`` so that the store can be pointed at a real
HOMEPOT PostgreSQL database and read as it is. Two quirks are kept on purpose: analytics tables
(``device_metrics``, ``alerts``, ``error_logs``) hold naive UTC timestamps while core tables are
timezone-aware, and ``alerts.device_id`` holds the public string id while metric tables join on
the integer ``devices.id``.

Everything we add is prefixed ``ai_``. ``device_metrics`` gets a unique (device_id, timestamp)
index in stores we create: that is what makes ingest idempotent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: The nine named metric columns of ``device_metrics``.
NAMED_METRICS: tuple[str, ...] = (
    "cpu_percent",
    "memory_percent",
    "disk_percent",
    "network_latency_ms",
    "transaction_count",
    "transaction_volume",
    "error_rate",
    "active_connections",
    "queue_depth",
)
INTEGER_METRICS: frozenset[str] = frozenset({"transaction_count", "active_connections", "queue_depth"})

DEVICE_TYPES: tuple[str, ...] = ("pos_terminal", "iot_sensor", "industrial_controller", "gateway", "unknown")
HEALTH_STATES: tuple[str, ...] = ("healthy", "warning", "error", "maintenance", "unknown")
ALERT_SEVERITIES: tuple[str, ...] = ("critical", "high", "medium", "low", "info")
ALERT_STATUSES: tuple[str, ...] = ("active", "acknowledged", "resolved", "ignored")
EVENT_TYPES: tuple[str, ...] = ("failure", "repair", "maintenance", "replacement")
ANOMALY_KINDS: tuple[str, ...] = (
    "spike",
    "dip",
    "level_shift",
    "drift",
    "variance_change",
    "stuck",
    "broken_correlation",
    "outage",
)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


# --------------------------------------------------------------------------- HOMEPOT tables


class Site(Base):
    __tablename__ = "sites"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[str] = mapped_column(String(50), unique=True, index=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str | None] = mapped_column(Text)
    location: Mapped[str | None] = mapped_column(String(200))
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    tenant_id: Mapped[int | None] = mapped_column(Integer)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    is_monitored: Mapped[bool] = mapped_column(Boolean, default=True)
    lifecycle_state: Mapped[str] = mapped_column(String(20), default="active")
    created_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SiteOperatingSchedule(Base):
    __tablename__ = "site_operating_schedules"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id"), index=True)
    day_of_week: Mapped[int] = mapped_column(Integer)  # 0 = Monday
    open_time: Mapped[str | None] = mapped_column(String(8))  # "HH:MM" local time
    close_time: Mapped[str | None] = mapped_column(String(8))
    is_closed: Mapped[bool] = mapped_column(Boolean, default=False)
    is_maintenance_window: Mapped[bool] = mapped_column(Boolean, default=False)
    expected_transaction_volume: Mapped[int | None] = mapped_column(Integer)
    peak_hours_start: Mapped[str | None] = mapped_column(String(8))
    peak_hours_end: Mapped[str | None] = mapped_column(String(8))
    __table_args__ = (UniqueConstraint("site_id", "day_of_week"),)


class Device(Base):
    __tablename__ = "devices"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[str] = mapped_column(String(100), unique=True, index=True)
    name: Mapped[str] = mapped_column(String(100))
    device_type: Mapped[str] = mapped_column(String(50), index=True)
    status: Mapped[str | None] = mapped_column(String(20))
    lifecycle_state: Mapped[str] = mapped_column(String(20), default="active")
    health_state: Mapped[str] = mapped_column(String(20), default="unknown")
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id"), index=True)
    enrollment_method: Mapped[str | None] = mapped_column(String(50))
    ip_address: Mapped[str | None] = mapped_column(String(45))
    mac_address: Mapped[str | None] = mapped_column(String(17))
    os_details: Mapped[str | None] = mapped_column(String(255))
    firmware_version: Mapped[str | None] = mapped_column(String(50))
    last_seen: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    peripherals: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    capabilities: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    config: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    is_monitored: Mapped[bool] = mapped_column(Boolean, default=True)
    is_simulated: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class DeviceMetric(Base):
    __tablename__ = "device_metrics"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    timestamp: Mapped[datetime] = mapped_column(DateTime(timezone=False))  # naive UTC
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"))
    cpu_percent: Mapped[float | None] = mapped_column(Float)
    memory_percent: Mapped[float | None] = mapped_column(Float)
    disk_percent: Mapped[float | None] = mapped_column(Float)
    network_latency_ms: Mapped[float | None] = mapped_column(Float)
    transaction_count: Mapped[int | None] = mapped_column(Integer)
    transaction_volume: Mapped[float | None] = mapped_column(Float)
    error_rate: Mapped[float | None] = mapped_column(Float)
    active_connections: Mapped[int | None] = mapped_column(Integer)
    queue_depth: Mapped[int | None] = mapped_column(Integer)
    extra_metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    provenance: Mapped[str | None] = mapped_column(String(20))
    collection_interval_seconds: Mapped[int | None] = mapped_column(Integer)
    __table_args__ = (
        UniqueConstraint("device_id", "timestamp", name="uq_device_metrics_device_ts"),
        Index("ix_device_metrics_timestamp", "timestamp"),
    )


class HealthCheck(Base):
    __tablename__ = "health_checks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"))
    is_healthy: Mapped[bool] = mapped_column(Boolean)
    response_time_ms: Mapped[int | None] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer)
    endpoint: Mapped[str | None] = mapped_column(String(200))
    response_data: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error_message: Mapped[str | None] = mapped_column(Text)
    timestamp: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    __table_args__ = (
        UniqueConstraint("device_id", "timestamp", name="uq_health_checks_device_ts"),
        Index("ix_health_checks_timestamp", "timestamp"),
    )


class Alert(Base):
    __tablename__ = "alerts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    timestamp: Mapped[datetime] = mapped_column(DateTime(timezone=False), index=True)
    device_id: Mapped[str | None] = mapped_column(String(50), index=True)  # public id
    site_id: Mapped[int | None] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    severity: Mapped[str] = mapped_column(String(20))
    category: Mapped[str | None] = mapped_column(String(50))
    status: Mapped[str] = mapped_column(String(20), default="active", index=True)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=False))
    resolved_by: Mapped[str | None] = mapped_column(String(100))
    resolution_notes: Mapped[str | None] = mapped_column(Text)
    ai_recommendation: Mapped[str | None] = mapped_column(Text)
    ai_confidence: Mapped[float | None] = mapped_column(Float)


class ErrorLog(Base):
    __tablename__ = "error_logs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    timestamp: Mapped[datetime] = mapped_column(DateTime(timezone=False), index=True)
    category: Mapped[str | None] = mapped_column(String(50))
    severity: Mapped[str | None] = mapped_column(String(20))
    error_code: Mapped[str | None] = mapped_column(String(50))
    error_message: Mapped[str | None] = mapped_column(Text)
    stack_trace: Mapped[str | None] = mapped_column(Text)
    endpoint: Mapped[str | None] = mapped_column(String(200))
    user_id: Mapped[str | None] = mapped_column(String(100))
    context: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # {"device_id": public id, ...}
    resolved: Mapped[bool] = mapped_column(Boolean, default=False)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=False))
    provenance: Mapped[str | None] = mapped_column(String(20))


class DeviceStateHistory(Base):
    __tablename__ = "device_state_history"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    timestamp: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id"), index=True)
    previous_state: Mapped[str | None] = mapped_column(String(20))
    new_state: Mapped[str | None] = mapped_column(String(20))
    changed_by: Mapped[str | None] = mapped_column(String(100))
    reason: Mapped[str | None] = mapped_column(String(500))
    extra_data: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    provenance: Mapped[str | None] = mapped_column(String(20))


class Job(Base):
    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(String(100), unique=True)
    action: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    priority: Mapped[str] = mapped_column(String(20), default="normal")
    status: Mapped[str] = mapped_column(String(20), default="pending")
    site_id: Mapped[int | None] = mapped_column(Integer)
    device_id: Mapped[int | None] = mapped_column(Integer, index=True)
    segment: Mapped[str | None] = mapped_column(String(100))
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    scheduled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error_message: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class JobOutcome(Base):
    __tablename__ = "job_outcomes"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    timestamp: Mapped[datetime] = mapped_column(DateTime(timezone=False))
    job_id: Mapped[str] = mapped_column(String(100))
    job_type: Mapped[str | None] = mapped_column(String(50))
    device_id: Mapped[str | None] = mapped_column(String(100))  # public id
    status: Mapped[str] = mapped_column(String(20))
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    error_code: Mapped[str | None] = mapped_column(String(50))
    error_message: Mapped[str | None] = mapped_column(Text)
    retry_count: Mapped[int] = mapped_column(Integer, default=0)
    provenance: Mapped[str | None] = mapped_column(String(20))


class AuditLog(Base):
    __tablename__ = "audit_logs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_type: Mapped[str] = mapped_column(String(50), index=True)
    description: Mapped[str | None] = mapped_column(Text)
    user_id: Mapped[str | None] = mapped_column(String(100))
    job_id: Mapped[str | None] = mapped_column(String(100))
    device_id: Mapped[str | None] = mapped_column(String(100))
    site_id: Mapped[str | None] = mapped_column(String(50))
    old_values: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    new_values: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    event_metadata: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    ip_address: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


HOMEPOT_TABLES: tuple[str, ...] = (
    "sites",
    "site_operating_schedules",
    "devices",
    "device_metrics",
    "health_checks",
    "alerts",
    "error_logs",
    "device_state_history",
    "jobs",
    "job_outcomes",
    "audit_logs",
)

# --------------------------------------------------------------------------- our ai_* tables


class AiMigration(Base):
    __tablename__ = "ai_migrations"
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    applied_at: Mapped[datetime] = mapped_column(DateTime(timezone=False))


class AiDeviceEvent(Base):
    """Failure, repair, maintenance and replacement events: the labels survival models need."""

    __tablename__ = "ai_device_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[int] = mapped_column(Integer, index=True)  # devices.id
    event_type: Mapped[str] = mapped_column(String(20))  # EVENT_TYPES
    timestamp: Mapped[datetime] = mapped_column(DateTime(timezone=False), index=True)
    cause: Mapped[str | None] = mapped_column(String(100))
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    provenance: Mapped[str | None] = mapped_column(String(20))
    __table_args__ = (UniqueConstraint("device_id", "event_type", "timestamp", name="uq_ai_events"),)


class AiSimulationRun(Base):
    __tablename__ = "ai_simulation_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seed: Mapped[int] = mapped_column(Integer)
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    start: Mapped[datetime] = mapped_column(DateTime(timezone=False))
    end: Mapped[datetime] = mapped_column(DateTime(timezone=False))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=False))


class AiGroundTruthAnomaly(Base):
    """An anomaly the simulator injected: what, where, when."""

    __tablename__ = "ai_gt_anomalies"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int | None] = mapped_column(Integer)
    device_id: Mapped[int] = mapped_column(Integer, index=True)
    kind: Mapped[str] = mapped_column(String(30))  # ANOMALY_KINDS
    metrics: Mapped[list[Any]] = mapped_column(JSON)  # metric names
    start: Mapped[datetime] = mapped_column(DateTime(timezone=False))
    end: Mapped[datetime] = mapped_column(DateTime(timezone=False))
    magnitude: Mapped[float | None] = mapped_column(Float)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class AiGroundTruthFailure(Base):
    """A failure the simulator caused: when, why, and what the degradation looked like."""

    __tablename__ = "ai_gt_failures"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int | None] = mapped_column(Integer)
    device_id: Mapped[int] = mapped_column(Integer, index=True)
    failed_at: Mapped[datetime] = mapped_column(DateTime(timezone=False))
    cause: Mapped[str] = mapped_column(String(100))
    degradation_start: Mapped[datetime | None] = mapped_column(DateTime(timezone=False))
    metrics: Mapped[list[Any] | None] = mapped_column(JSON)
    resolution: Mapped[str | None] = mapped_column(String(20))  # repair | replacement
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class AiAnomaly(Base):
    """A finding of the anomaly scorer, with its explanation."""

    __tablename__ = "ai_anomalies"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[int] = mapped_column(Integer, index=True)
    metric: Mapped[str] = mapped_column(String(100))
    metrics: Mapped[list[Any] | None] = mapped_column(JSON)
    kind: Mapped[str | None] = mapped_column(String(30))
    score: Mapped[float] = mapped_column(Float)
    severity: Mapped[str] = mapped_column(String(20))
    start: Mapped[datetime] = mapped_column(DateTime(timezone=False), index=True)
    end: Mapped[datetime | None] = mapped_column(DateTime(timezone=False))
    observed: Mapped[float | None] = mapped_column(Float)
    expected_low: Mapped[float | None] = mapped_column(Float)
    expected_high: Mapped[float | None] = mapped_column(Float)
    signals: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    explanation: Mapped[str | None] = mapped_column(Text)
    detected_at: Mapped[datetime] = mapped_column(DateTime(timezone=False))
    alert_id: Mapped[int | None] = mapped_column(Integer)
    __table_args__ = (UniqueConstraint("device_id", "metric", "start", name="uq_ai_anomalies"),)


class AiDetectorState(Base):
    """Streaming detector state between incremental runs, one row per (device, metric) key."""

    __tablename__ = "ai_detector_state"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    last_timestamp: Mapped[datetime | None] = mapped_column(DateTime(timezone=False))
    state: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=False))


class AiPrediction(Base):
    __tablename__ = "ai_predictions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[int] = mapped_column(Integer, index=True)
    predicted_at: Mapped[datetime] = mapped_column(DateTime(timezone=False), index=True)
    model: Mapped[str] = mapped_column(String(50))
    p_fail_7d: Mapped[float] = mapped_column(Float)
    p_fail_30d: Mapped[float] = mapped_column(Float)
    rul_median_days: Mapped[float | None] = mapped_column(Float)
    rul_low_days: Mapped[float | None] = mapped_column(Float)
    rul_high_days: Mapped[float | None] = mapped_column(Float)
    factors: Mapped[list[Any] | None] = mapped_column(JSON)


class AiModel(Base):
    __tablename__ = "ai_models"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), index=True)
    kind: Mapped[str] = mapped_column(String(50))
    fitted_at: Mapped[datetime] = mapped_column(DateTime(timezone=False))
    blob: Mapped[bytes] = mapped_column(LargeBinary)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class AiReport(Base):
    """As HOMEPOT's AI plan named it: report_type daily|weekly|monthly|incident|custom."""

    __tablename__ = "ai_reports"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    report_type: Mapped[str] = mapped_column(String(20))
    site_id: Mapped[int | None] = mapped_column(Integer)
    device_id: Mapped[int | None] = mapped_column(Integer)
    content: Mapped[str] = mapped_column(Text)
    generated_at: Mapped[datetime] = mapped_column(DateTime(timezone=False))
    mode: Mapped[str | None] = mapped_column(String(20))
    period_start: Mapped[datetime | None] = mapped_column(DateTime(timezone=False))
    period_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=False))


class AiToolCall(Base):
    """Audit of every tool call: who, which surface, tool, arguments, duration, rows."""

    __tablename__ = "ai_tool_calls"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    timestamp: Mapped[datetime] = mapped_column(DateTime(timezone=False), index=True)
    user_id: Mapped[str | None] = mapped_column(String(100))
    surface: Mapped[str | None] = mapped_column(String(20))
    thread_id: Mapped[str | None] = mapped_column(String(200))
    tool: Mapped[str] = mapped_column(String(100))
    arguments: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(30))
    seconds: Mapped[float] = mapped_column(Float)
    rows: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)


class AiNotification(Base):
    __tablename__ = "ai_notifications"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=False), index=True)
    channel: Mapped[str] = mapped_column(String(100))
    dedup_key: Mapped[str] = mapped_column(String(200), index=True)
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20))


AI_TABLES: tuple[str, ...] = tuple(
    t.name for t in Base.metadata.sorted_tables if t.name.startswith("ai_")
)
