"""One Settings object for the whole process, read from ``ENVOI_*`` variables and passed down."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ENVOI_", env_file=None, extra="ignore")

    data_dir: Path = Field(Path(".envoi"), description="Where the embedded database and the demo API key live.")
    database_url: str = Field(
        "",
        description="SQLAlchemy URL; sqlite:///file or postgresql://user@host/db. Default: SQLite in data_dir.",
    )
    database_pool_size: int = Field(
        10, ge=1, description="Connections each process keeps open to the database (PostgreSQL; SQLite: 1)."
    )
    database_max_overflow: int | None = Field(
        None,
        ge=0,
        description="Connections a process may open beyond the pool at peaks, closed once returned. "
        "Default: database_pool_size. See docs/operations.md for the whole budget.",
    )
    database_prepared_statements: bool | None = Field(
        None,
        description="Let psycopg prepare repeated statements on the server. Turn off behind a pooler in "
        "transaction mode (PgBouncer before 1.21). Default: off when database_direct_url is set, else on.",
    )
    database_direct_url: str = Field(
        "",
        description="PostgreSQL only: a URL that reaches the server itself, not a pooler in transaction mode, for "
        "what needs a session of its own (LISTEN, the scheduler's leader lock). Default: database_url.",
    )

    smtp_url: SecretStr | None = Field(
        None,
        description="smtp://user:pass@host:port, smtps://..., ?starttls=true. Unset: emails go to the outbox.",
    )
    default_region: str | None = Field(
        None,
        pattern=r"^[A-Z]{2}$",
        description="Country of phone numbers given without +country code (FR: 06 12 34 56 78 is +33612345678).",
    )
    smpp_url: SecretStr | None = Field(
        None,
        description="smpp://system_id:password@host:2775?source=Shop for SMS through an SMSC. Unset: the outbox.",
    )
    providers_file: Path | None = Field(
        None, description="A TOML file of [providers.<name>] tables: kind, role and the kind's settings."
    )
    providers_refresh_seconds: float = Field(
        5.0, gt=0, description="How soon a provider changed through the API is used by every process."
    )
    provider_files_dir: Path | None = Field(
        None,
        description="The folder whose files (CA bundles, DKIM key folders) a provider created through the API may "
        "name. Unset: such paths are refused over the API; the providers file and the environment may name any.",
    )
    provider_failover_after: int = Field(
        5, ge=1, description="Temporary failures in a row of a default provider before its backup takes over."
    )
    provider_failover_seconds: float = Field(
        60.0, gt=0, description="How long the backup provider sends before the default one is tried again."
    )
    smtp_ca_file: Path | None = Field(None, description="Extra CA bundle to trust for the SMTP server's TLS.")
    smtp_connections: int = Field(
        16, ge=1, le=64, description="SMTP connections per worker: each message costs four round trips."
    )
    smtp_timeout: float = Field(30.0, gt=0)
    message_id_domain: str = Field("envoi.localhost", description="Right-hand side of Message-ID headers.")
    dkim_key_dir: Path | None = Field(
        None,
        description="A folder of DKIM private keys named <domain>.<selector>.pem (envoi dkim generate writes them): "
        "every SMTP provider signs the mail of their domains and subdomains. Unset: no DKIM signature.",
    )

    attachment_max_bytes: int = Field(
        10 * 1024 * 1024, ge=1, description="Largest attachment fetched by URL, and the most one email's may total."
    )
    attachment_timeout: float = Field(
        10.0, gt=0, description="Seconds to fetch one attachment URL, redirects and download included."
    )
    attachment_allow_private_networks: bool = Field(
        False,
        description="Fetch attachments from private, loopback and link-local addresses: for attachment servers "
        "on your own network. Off, such URLs are refused, so that events cannot reach internal services.",
    )
    attachment_ca_file: Path | None = Field(None, description="Extra CA bundle to trust for attachment servers.")

    worker_batch_size: int = Field(50, ge=1, le=10_000, description="Events claimed at once.")
    worker_concurrency: int = Field(4, ge=1, le=32, description="Batches in flight per worker process.")
    worker_lease_seconds: float = Field(120.0, gt=0, description="After this, a claimed batch is taken over.")
    worker_poll_seconds: float = Field(0.5, gt=0, description="Idle poll interval when nothing wakes us.")
    shutdown_grace_seconds: float = Field(
        20.0,
        gt=0,
        description="On SIGTERM, how long requests in flight and the batches in hand get to finish; a batch still "
        "unfinished then goes back to the queue. Keep it under your supervisor's kill timeout (Kubernetes: 30 s).",
    )
    shutdown_drain_seconds: float = Field(
        0.0,
        ge=0,
        le=300,
        description="On SIGTERM, how long envoi serve goes on serving while /readyz answers 503, so that a load "
        "balancer stops sending it requests before it stops accepting them; then the grace period begins. A second "
        "SIGTERM ends the wait. 0: stop accepting at once.",
    )

    retry_max_attempts: int = Field(
        12, ge=1, description="Sending attempts before an event is too_old (12: about 7 hours of retrying)."
    )
    retry_base_delay: float = Field(30.0, ge=0, description="First retry delay in seconds; doubles each time.")
    retry_max_delay: float = Field(3600.0, ge=0)

    public_url: str = Field(
        "http://127.0.0.1:8000",
        description="Where operators reach Envoi: notification emails link to console pages under this address.",
    )
    notification_sender: str = Field(
        "Envoi <notifications@example.com>", description="The From of notification emails to operators."
    )
    notification_heartbeat_seconds: float = Field(
        15.0, gt=0, description="A comment on idle notification streams this often, so proxies keep them open."
    )
    notification_poll_seconds: float = Field(
        0.5, gt=0, description="SQLite: how often a process looks for notifications written by another process."
    )
    failure_alert_window_seconds: float = Field(
        300.0, gt=0, description="An event type whose events kept failing over this window alerts its supervisors."
    )
    failure_alert_min_events: int = Field(
        20, ge=1, description="Events of a type that must have ended in the window before its failure rate counts."
    )
    failure_alert_ratio: float = Field(
        0.5, gt=0, le=1, description="The share of them ended delivery_failed, routing_failed or too_old that alerts."
    )
    failure_alert_check_seconds: float = Field(30.0, gt=0, description="How often the worker checks failure rates.")
    report_sample_seconds: float = Field(
        60.0, gt=0, description="How often the worker samples the queue's depth for the reports and checks thresholds."
    )
    report_window_minutes: float = Field(
        15.0, gt=0, description="The watched p95 queue and processing times are of the events ended this recently."
    )
    threshold_queue_depth_warning: int = Field(
        1000, ge=0, description="Events waiting for a worker (due, not yet claimed) that warn the supervisors; 0: off."
    )
    threshold_queue_depth_alert: int = Field(10_000, ge=0, description="Events waiting that alert them; 0: off.")
    threshold_queue_time_warning_seconds: float = Field(
        60.0, ge=0, description="A p95 queue time (due to first claimed) that warns the supervisors; 0: off."
    )
    threshold_queue_time_alert_seconds: float = Field(300.0, ge=0, description="A p95 queue time that alerts; 0: off.")
    threshold_processing_time_warning_seconds: float = Field(
        60.0, ge=0, description="A p95 processing time (first claimed to final status) that warns; 0: off."
    )
    threshold_processing_time_alert_seconds: float = Field(
        600.0, ge=0, description="A p95 processing time that alerts; 0: off."
    )
    scheduler: bool = Field(
        True, description="Whether this process may run the workflow scheduler (one process leads at a time)."
    )
    scheduler_tick_seconds: float = Field(1.0, gt=0, description="How often the scheduler looks for due work.")
    scheduler_takeover_seconds: float = Field(
        15.0, gt=0, description="How often a standby process tries to take the lead over from a dead one."
    )
    workflow_http_allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Hosts http_request activities may call (.example.com: any subdomain); empty: any public host.",
    )
    workflow_http_allow_private_networks: bool = Field(
        False, description="Let http_request activities call private and loopback addresses (tests, intranets)."
    )
    workflow_pause_reminder_after_seconds: float = Field(
        7 * 86400.0, gt=0, description="A workflow paused this long reminds its supervisors."
    )
    workflow_pause_reminder_every_seconds: float = Field(7 * 86400.0, gt=0, description="Between two reminders.")
    workflow_pause_reminders: int = Field(4, ge=0, description="Reminders before a paused workflow is stopped.")
    retention_events_days: float = Field(30.0, gt=0, description="The purge deletes ended events older than this.")
    retention_workflow_runs_days: float = Field(30.0, gt=0)
    retention_notifications_days: float = Field(90.0, gt=0)
    tracking_secret: SecretStr | None = Field(
        None,
        description="Signs tracking and unsubscribe links. Unset: a random secret made once and kept in the database.",
    )
    tracking_bot_window_seconds: float = Field(
        10.0, ge=0, description="Opens and clicks this soon after sending are a scanner's, not a person's."
    )
    ab_test_min_duration_seconds: float = Field(
        3600.0, gt=0, description="The shortest A/B test: rates measured over less than this mislead."
    )
    webhook_allow_private_networks: bool = Field(
        False, description="Let webhooks call private, loopback and link-local addresses (a receiver on your network)."
    )
    webhook_timeout_seconds: float = Field(10.0, gt=0, description="How long a receiver has to answer a call.")
    webhook_retry_base_seconds: float = Field(30.0, gt=0, description="First retry delay of a call; doubles.")
    webhook_retry_max_seconds: float = Field(3600.0, gt=0, description="Longest delay between two tries.")
    webhook_retry_hours: float = Field(
        24.0, gt=0, description="A call still failing after this disables its subscription (its owner is told)."
    )
    webhook_poll_seconds: float = Field(1.0, gt=0, description="How often an idle sender looks for calls to make.")
    bounce_domain: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)+$",
        description="Emails are sent with the return path bounce+<event id>-<signature>@<this domain> (VERP), "
        "whose MX must lead to the bounce listener. Unset: the From address is the return path.",
    )
    bounce_listen_host: str = Field("127.0.0.1", description="Where the inbound bounce listener (SMTP) listens.")
    bounce_listen_port: int | None = Field(
        None, ge=0, le=65535, description="The bounce listener's port, in the envoi serve process. Unset: off."
    )
    bounce_max_bytes: int = Field(
        2 * 1024 * 1024, ge=1024, description="Largest report the bounce listener accepts (552 above it)."
    )
    bounce_soft_limit: int = Field(
        3, ge=1, description="Soft bounces of an address within bounce_soft_days that put it in quarantine."
    )
    bounce_soft_days: float = Field(7.0, gt=0, description="The period over which soft bounces are counted.")
    console_session_hours: float = Field(8.0, gt=0, description="How long a console login lasts.")
    console_secure_cookie: bool = Field(
        False, description="Mark the session cookie Secure even when Envoi sees plain http (behind a TLS proxy)."
    )
    console_login_failures_per_login: int = Field(5, ge=1, description="Failed logins for one login per window.")
    console_login_failures_per_address: int = Field(
        20, ge=1, description="Failed logins from one client address per window."
    )
    console_login_window_minutes: float = Field(15.0, gt=0, description="The window of the login throttle.")

    metrics_dir: Path | None = Field(
        None,
        description="Where each envoi serve and envoi worker process of this host writes its counts, so that "
        "/metrics in any of them sums them all: every process of a host must use the same one. "
        "Default: metrics under data_dir.",
    )

    batch_max_events: int = Field(10_000, ge=1)
    ingest_max_queue_depth: int = Field(
        1_000_000,
        ge=0,
        description="While this many pushed events (not marketing emails) are due and waiting for a worker, "
        "ingestion answers 429 with Retry-After instead of storing more (about 15 minutes of sending); 0: off.",
    )
    ingest_rate_per_key: float = Field(
        0.0,
        ge=0,
        description="Events a second each API key (or SOAP operator) may push, across every API process (the "
        "buckets are in the database: a statement per request); 0: no limit.",
    )
    ingest_burst_per_key: int = Field(
        0, ge=0, description="Events a key may push at once (a batch counts its events); 0: a second of its rate."
    )
    request_max_bytes: int = Field(
        64 * 1024 * 1024,
        ge=1024,
        description="Largest request body of any route (a CSV import of profiles is up to 50 MB); larger: 413.",
    )
    soap_max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024, description="Largest SOAP request accepted.")
    soap_session_hours: float = Field(24.0, gt=0, description="How long a Logon session token lives.")
    load_demo_data: bool = True
    log_json: bool = False
    log_level: str = "info"

    @field_validator("workflow_http_allowed_hosts", mode="before")
    @classmethod
    def _host_list(cls, value: object) -> object:
        """ENVOI_WORKFLOW_HTTP_ALLOWED_HOSTS=api.example.com,.internal.example.com"""
        if isinstance(value, str):
            return [host.strip().lower() for host in value.split(",") if host.strip()]
        return value

    @field_validator("database_url", "database_direct_url")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    def resolved_database_url(self) -> str:
        """The async SQLAlchemy URL, with the driver Envoi uses for each backend."""
        url = self.database_url or f"sqlite:///{(self.data_dir / 'envoi.db').as_posix()}"
        for plain, driver in (
            ("sqlite://", "sqlite+aiosqlite://"),
            ("postgresql://", "postgresql+psycopg://"),
            ("postgres://", "postgresql+psycopg://"),
        ):
            if url.startswith(plain):
                return driver + url[len(plain) :]
        return url

    def resolved_direct_url(self) -> str:
        """The async SQLAlchemy URL of a connection that keeps its session (LISTEN, session advisory locks)."""
        if not self.database_direct_url:
            return self.resolved_database_url()
        return self.model_copy(update={"database_url": self.database_direct_url}).resolved_database_url()

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url().startswith("sqlite")
