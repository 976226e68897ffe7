"""What pins a client session to its DB connection, as AWS's "Avoiding
pinning" page lists it (rds-proxy-managing): statements over 16 KB and
prepared statements for every engine; for MySQL and MariaDB, table locks,
named locks, temporary tables and SETs of anything but the variables the
proxy tracks (unless the proxy's EXCLUDE_VARIABLE_SETS filter lets variable
SETs through); for PostgreSQL, any SET or RESET, temporary objects,
cursors, DISCARD, LISTEN, LOAD, sequence functions and advisory locks.

One difference, said in localstack/README.md: AWS lists PostgreSQL's
extended query protocol among the causes; here only a *named* prepared
statement pins, not the unnamed ones drivers such as pg8000 send for every
query (or every PostgreSQL client would be pinned)."""

import re
from typing import Optional

LONG_STATEMENT = 16 * 1024

# MySQL and MariaDB variables the proxy tracks: setting them does not pin.
TRACKED_MYSQL = {
    "autocommit", "auto_increment_increment", "character_set_client",
    "character_set_database", "character_set_filesystem", "character_set_connection",
    "character_set_results", "character_set_server", "collation_connection",
    "collation_database", "collation_server", "interactive_timeout", "names",
    "net_write_timeout", "query_cache_type", "session_track_schema", "sql_mode",
    "time_zone", "transaction_isolation", "tx_isolation", "transaction_read_only",
    "tx_read_only", "wait_timeout",
}

_MYSQL_PINS = re.compile(
    r"^\s*(lock\s+tables?\b|flush\s+tables\s+with\s+read\s+lock|create\s+temporary\s|prepare\s)"
    r"|\bget_lock\s*\(",
    re.IGNORECASE,
)
_POSTGRES_PINS = re.compile(
    r"^\s*(set\s|reset\s|create\s+(temp|temporary)\s|declare\s|discard\s|listen\s"
    r"|load\s|prepare\s)"
    r"|\b(nextval|setval|pg_advisory_lock|pg_try_advisory_lock)\s*\(",
    re.IGNORECASE,
)
_SET = re.compile(r"^\s*set\s+(.*)$", re.IGNORECASE | re.DOTALL)


def _mysql_set_targets(assignments: str) -> list:
    """The variables a MySQL SET assigns: `names`, `@user`, `sql_mode`..."""
    text = re.sub(r"^(session|local)\s+", "", assignments.strip(), flags=re.IGNORECASE)
    lowered = text.lower()
    if lowered.startswith(("names", "character set", "char set", "charset")):
        return ["names"]
    if lowered.startswith("transaction"):
        return ["transaction_isolation"]
    targets = []
    for part in re.split(r",(?![^()]*\))", text):
        name = part.split("=", 1)[0].strip().lower()
        name = re.sub(r"^(session\s+|local\s+|@@session\.|@@local\.|@@)", "", name)
        targets.append(name)
    return targets


_COMMENTS = re.compile(r"/\*.*?\*/|--[^\n]*|#[^\n]*", re.DOTALL)


def pins(family: str, text: str, prepared: bool = False, filters=()) -> Optional[str]:
    """Why this query pins the session, or None: the first of its
    statements that does (a query may hold several, `;` between them)."""
    if prepared:
        return "a prepared statement"
    if len(text) > LONG_STATEMENT:
        return "a statement over 16 KB"
    # Comments out, then each statement (a `;` in a string literal only
    # splits it into parts that pin no less).
    for statement in _COMMENTS.sub(" ", text).split(";"):
        reason = _statement_pins(family, statement, filters)
        if reason:
            return reason
    return None


def _statement_pins(family: str, text: str, filters) -> Optional[str]:
    if family == "POSTGRESQL":
        return "SQL that changes session state" if _POSTGRES_PINS.search(text) else None
    if _MYSQL_PINS.search(text):
        return "SQL that keeps state in the session (a lock, a temporary table, PREPARE)"
    found = _SET.match(text)
    if not found:
        return None
    targets = _mysql_set_targets(found.group(1))
    if all(t in TRACKED_MYSQL for t in targets):
        return None
    if "EXCLUDE_VARIABLE_SETS" in filters:
        return None
    return "SQL changed session settings that the proxy doesn't track"
