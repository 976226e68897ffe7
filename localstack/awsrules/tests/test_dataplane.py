"""The data path (dataplane/, localstack/README.md "The data path"): a
function's connection through the proxy to the DB's real server, and each
rule of the listener and of the proxy's own login that refuses it, with the
error the client gets and the line in the proxy's log. The function
(dataplane_kit.FUNCTION_CODE) runs in a child process, as Invoke runs it.

    cd localstack && .venv/bin/python -m unittest awsrules.tests.test_dataplane
"""

import datetime
import json
import time
import unittest
from concurrent.futures import ThreadPoolExecutor

import boto3

from awsrules import policy
from awsrules.dataplane import pinning, tokens

from .base import REGION, AwsTest, wait_until
from .dataplane_kit import (
    ACCESS_DENIED, ACCOUNT, BORROW_TIMEOUT, DATABASE, NEEDS_TLS, PASSWORD, DataPathTest,
)

IAM_REFUSED = "IAM authentication failed for user admin. Check the IAM token for this user"
PG_WRONG_PASSWORD = ("28P01", "The password that was provided for the role admin is wrong.")
PG_IAM_NEEDS_TLS = ("28000", "IAM authentication is allowed only with SSL connections.")
PG_NEEDS_TLS = ("28000", "This RDS Proxy requires TLS connections.")


# --- 1. the working path ---------------------------------------------------


class WorkingPath(DataPathTest):
    def test_a_row_comes_back_through_the_proxy_over_tls_with_an_iam_token(self):
        got = self.connect(queries=["SELECT DATABASE(), VERSION(), 1 + 1"])
        self.assertNotIn("error", got, got)
        ((database, version, two),) = got["rows"][0]
        # The DB's real server, its DBName.
        self.assertEqual((database, two), (DATABASE, 2))
        self.assertIn("MariaDB", version)
        self.assertLogged("[proxyEndpoint=default]", "A new client connected from 127.")

    def test_the_certificate_names_the_endpoint_and_verifies_against_the_emulators_ca(self):
        # "verify": Python's default context (hostname checked) with the
        # runtime's CA bundle, the emulator's CA.
        peer = self.connect()["peer"]
        self.assertEqual(peer["subjectAltName"], [["DNS", self.w.host]])
        self.assertIn([["commonName", "Emulated Amazon RDS Root CA"]], peer["issuer"])
        # A client that trusts only the system's CAs refuses the proxy.
        got = self.connect(tls="untrusted")
        self.assertEqual(got["code"], 2003, got)
        self.assertIn("CERTIFICATE_VERIFY_FAILED", got["message"])
        self.assertLogged("The client connection closed", "UNKNOWN_CA")


class Postgres(DataPathTest):
    ENGINE = "postgres"

    def test_a_row_comes_back_through_the_proxy_over_tls_with_an_iam_token(self):
        got = self.connect(queries=["SELECT current_database(), version(), 1 + 1"])
        self.assertNotIn("error", got, got)
        ((database, version, two),) = got["rows"][0]
        self.assertEqual((database, two), (DATABASE, 2))
        self.assertIn("PostgreSQL", version)
        self.assertEqual(got["auth"], [3, 0])  # the token: a clear-text password, over TLS

    def test_without_tls_the_client_is_refused(self):
        # RequireTLS (and IAM authentication): the client is told what the
        # log says, that the proxy requires TLS.
        self.assertRefused(self.connect(tls="none"), PG_NEEDS_TLS)
        # RequireTLS off: IAM authentication still needs TLS.
        self.modify_proxy(RequireTLS=False)
        self.assertRefused(self.connect(tls="none"), PG_IAM_NEEDS_TLS)
        self.assertLogged("[WARN]", "IAM authentication is allowed only with SSL connections.")
        # A password, and RequireTLS on.
        self.modify_proxy(RequireTLS=True, Auth=[{
            "AuthScheme": "SECRETS", "SecretArn": self.w.secret, "IAMAuth": "DISABLED"}])
        got = self.connect(tls="none", password=PASSWORD)
        self.assertRefused(got, ("28000", "This RDS Proxy requires TLS connections."))
        self.assertLogged("[WARN]", "This RDS Proxy requires TLS connections.")
        self.assertRows(self.connect(password=PASSWORD), [[[1]]])

    def test_a_set_pins_the_session(self):
        self.assertRows(self.connect(queries=["SET client_encoding TO 'UTF8'", "SELECT 1"]),
                        [None, [[1]]])
        self.assertLogged("pinned", "Reason: SQL that changes session state",
                          "Digest: \"SET client_encoding TO 'UTF8'\"")
        self.assertEqual(self.peak("DatabaseConnectionsCurrentlySessionPinned"), 1.0)

    def test_passwords_scram_by_default_then_md5(self):
        for auth_type in ("POSTGRES_SCRAM_SHA_256", "POSTGRES_MD5"):
            self.modify_proxy(RequireTLS=False, Auth=[{
                "AuthScheme": "SECRETS", "SecretArn": self.w.secret, "IAMAuth": "DISABLED",
                **({"ClientPasswordAuthType": auth_type} if "MD5" in auth_type else {}),
            }])
            entry = self.c["rds"].describe_db_proxies(DBProxyName="p1")["DBProxies"][0]["Auth"][0]
            self.assertEqual(entry["ClientPasswordAuthType"], auth_type)
            ok, wrong = self.connect_all(
                dict(tls="none", password=PASSWORD, queries=["SELECT current_user"]),
                dict(tls="none", password="not-" + PASSWORD),
            )
            self.assertRows(ok, [[["admin"]]])
            self.assertRefused(wrong, PG_WRONG_PASSWORD)
            # AuthenticationSASL (10), or AuthenticationMD5Password (5), then Ok (0).
            self.assertEqual(ok["auth"], [10, 11, 12, 0] if "SCRAM" in auth_type else [5, 0])
        self.assertLogged("The password that was provided for the role admin is wrong.")


# --- 2. the network --------------------------------------------------------


class Network(DataPathTest):
    def test_a_caller_the_proxys_groups_do_not_admit_times_out_and_nothing_is_logged(self):
        # Another function of the VPC, in a group the proxy's does not admit.
        other_sg = self.group(self.w.vpc, "other")
        self.function("outsider", self.w.fn_role, self.w.subnets[:2], [other_sg])
        self.assertTimedOut(self.connect(fn="outsider", connect_timeout=1), 1)
        self.assertEqual(self.log_lines(), [])  # dropped packets: the proxy never saw them
        # Once its group is admitted, it gets through.
        self.admit(self.w.proxy_sg, other_sg, 3306)
        self.assertRows(self.connect(fn="outsider"), [[[1]]])

    def test_a_function_outside_any_vpc_cannot_reach_the_proxy(self):
        self.function("nowhere", self.w.fn_role)
        self.assertTimedOut(self.connect(fn="nowhere", connect_timeout=1), 1)
        self.assertEqual(self.log_lines(), [])

    def test_a_rule_on_another_port_does_not_admit(self):
        self.revoke(self.w.proxy_sg, self.w.fn_sg, 3306)
        self.admit(self.w.proxy_sg, self.w.fn_sg, 5432)
        self.assertTimedOut(self.connect(connect_timeout=1), 1)


# --- 3. TLS ------------------------------------------------------------------


class Tls(DataPathTest):
    def test_without_tls_the_client_gets_error_3159(self):
        self.assertRefused(self.connect(tls="none"), NEEDS_TLS)
        self.assertLogged("[WARN]", "This RDS Proxy requires TLS connections.")

    def test_with_require_tls_off_iam_authentication_still_needs_tls(self):
        self.modify_proxy(RequireTLS=False)
        self.assertRefused(self.connect(tls="none"), NEEDS_TLS)
        self.assertLogged("[WARN]", "IAM authentication is allowed only with SSL connections.")
        self.assertRows(self.connect(), [[[1]]])


# --- 4. the IAM token --------------------------------------------------------


class Token(DataPathTest):
    def test_a_token_made_for_the_dbs_host_is_refused_and_the_log_names_it(self):
        got = self.connect(token_host=self.w.db_host)
        self.assertRefused(got, ACCESS_DENIED)
        self.assertLogged(IAM_REFUSED, f"the token was generated for {self.w.db_host}:3306")

    def test_a_token_for_another_port_or_user_is_refused(self):
        port, user = self.connect_all(dict(token_port=3307), dict(token_user="app_user"))
        self.assertRefused(port, ACCESS_DENIED)
        self.assertRefused(user, ACCESS_DENIED)
        self.assertLogged(IAM_REFUSED, f"generated for {self.w.host}:3307")
        self.assertLogged(IAM_REFUSED, "generated for user 'app_user', not 'admin'")

    def test_an_expired_token_is_refused(self):
        old, recent = self.connect_all(dict(token_age=16 * 60), dict(token_age=14 * 60))
        self.assertRefused(old, ACCESS_DENIED)
        self.assertLogged(IAM_REFUSED, "the token has expired")
        self.assertRows(recent, [[[1]]])

    def test_a_password_is_refused_when_iam_is_required(self):
        self.assertRefused(self.connect(password=PASSWORD), ACCESS_DENIED)
        self.assertLogged(IAM_REFUSED, "the password is not an IAM authentication token")


class TokenVerification(AwsTest):
    """tokens.verify itself, with an IAM user's key (a token's other signer)."""

    def setUp(self):
        super().setUp()
        iam = self.c["iam"]  # AwsTest keeps IAM users: this one goes at the end
        self.user_arn = iam.create_user(UserName="token-signer")["User"]["Arn"]
        self.addCleanup(iam.delete_user, UserName="token-signer")
        key = self.key = iam.create_access_key(UserName="token-signer")["AccessKey"]
        self.addCleanup(iam.delete_access_key, UserName="token-signer",
                        AccessKeyId=key["AccessKeyId"])
        rds = boto3.client("rds", region_name=REGION, endpoint_url=self.url,
                           aws_access_key_id=key["AccessKeyId"],
                           aws_secret_access_key=key["SecretAccessKey"])
        self.host = "p1.proxy-abc.us-east-1.rds.amazonaws.com"
        self.token = rds.generate_db_auth_token(self.host, 3306, "admin", Region=REGION)
        self.signed = datetime.datetime.now(datetime.timezone.utc)

    def verify(self, token=None, host=None, port=3306, user="admin", region=REGION, after=0):
        return tokens.verify(token or self.token, host or self.host, port, user, region,
                             now=self.signed + datetime.timedelta(seconds=after))

    def refused(self, part, **kwargs):
        with self.assertRaises(tokens.TokenRefused) as caught:
            self.verify(**kwargs)
        self.assertIn(part, str(caught.exception))

    def test_a_good_token_names_its_signer_for_15_minutes(self):
        signer = self.verify(after=14 * 60)
        self.assertEqual((signer.principal_arn, signer.account_id, signer.role_arn),
                         (self.user_arn, ACCOUNT, None))
        self.refused("expired", after=15 * 60 + 5)
        self.refused("signed in the future", after=-10 * 60)

    def test_each_part_of_the_token_counts(self):
        self.refused("generated for", host="other.proxy-abc.us-east-1.rds.amazonaws.com")
        self.refused("generated for", port=5432)
        self.refused("generated for user 'admin', not 'app'", user="app")
        self.refused("region us-east-1, not eu-west-1", region="eu-west-1")
        self.refused("not an IAM authentication token", token=PASSWORD)
        signature = self.token.rsplit("X-Amz-Signature=", 1)[1]
        forged = self.token.replace(signature, "0" * len(signature))
        self.refused("signature does not match", token=forged)
        tampered = self.token.replace("DBUser=admin", "DBUser=root")
        self.refused("signature does not match", token=tampered, user="root")
        unknown = self.token.replace(self.key["AccessKeyId"], "AKIAUNKNOWNKEY000000")
        self.refused("unknown access key", token=unknown)
        longer = self.token.replace("X-Amz-Expires=900", "X-Amz-Expires=3600")
        self.refused("expired", token=longer)


# --- 5. the caller's rds-db:connect ----------------------------------------


class ConnectPolicy(DataPathTest):
    def assertDenied(self, resource=None):
        self.assertRefused(self.connect(), ACCESS_DENIED)
        resource = resource or f"arn:aws:rds-db:{REGION}:{ACCOUNT}:dbuser:{self.w.prx}/admin"
        self.assertLogged(IAM_REFUSED, f"{self.w.fn_role} is not allowed rds-db:connect on "
                                       f"{resource}")

    def test_without_the_policy_access_is_denied_and_the_log_names_what_the_role_lacks(self):
        self.c["iam"].delete_role_policy(RoleName="fn-role", PolicyName="connect")
        self.assertDenied()

    def test_a_policy_on_another_proxy_id_is_refused(self):
        self.connect_policy(f"arn:aws:rds-db:{REGION}:{ACCOUNT}:dbuser:prx-0123456789abcdefg/*")
        self.assertDenied()

    def test_a_policy_on_another_user_is_refused(self):
        self.connect_policy(self.w.users.replace("/*", "/app_user"))
        self.assertDenied()
        self.connect_policy(self.w.users.replace("/*", "/admin"))
        self.assertRows(self.connect(), [[[1]]])

    def test_an_explicit_deny_beside_the_allow_wins(self):
        self.connect_policy(self.w.users, name="deny", effect="Deny")
        self.assertDenied()

    def test_a_principal_arn_condition(self):
        self.connect_policy(self.w.users, condition={
            "ArnEquals": {"aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:role/other-role"}})
        self.assertDenied()
        self.connect_policy(self.w.users, condition={
            "ArnEquals": {"aws:PrincipalArn": self.w.fn_role}})
        self.assertRows(self.connect(), [[[1]]])

    def test_a_token_signed_by_an_iam_user_with_the_policy(self):
        iam = self.c["iam"]  # AwsTest keeps IAM users: this one goes at the end
        iam.create_user(UserName="token-user")
        self.addCleanup(iam.delete_user, UserName="token-user")
        key = iam.create_access_key(UserName="token-user")["AccessKey"]
        self.addCleanup(iam.delete_access_key, UserName="token-user",
                        AccessKeyId=key["AccessKeyId"])
        document = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "rds-db:connect", "Resource": self.w.users}]}
        iam.put_user_policy(UserName="token-user", PolicyName="connect",
                            PolicyDocument=json.dumps(document))
        self.addCleanup(iam.delete_user_policy, UserName="token-user", PolicyName="connect")
        got = self.connect(token_key=[key["AccessKeyId"], key["SecretAccessKey"]])
        self.assertRows(got, [[[1]]])

    def test_a_managed_policy_counts(self):
        self.c["iam"].delete_role_policy(RoleName="fn-role", PolicyName="connect")
        document = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "rds-db:*", "Resource": self.w.users}]}
        arn = self.c["iam"].create_policy(PolicyName="managed-connect",
                                          PolicyDocument=json.dumps(document))["Policy"]["Arn"]
        self.c["iam"].attach_role_policy(RoleName="fn-role", PolicyArn=arn)
        self.assertRows(self.connect(), [[[1]]])


# --- 6. IAM propagation -----------------------------------------------------


class Propagation(DataPathTest):
    def test_a_policy_attached_just_now_is_honoured_iam_propagation_seconds_later(self):
        self.c["iam"].delete_role_policy(RoleName="fn-role", PolicyName="connect")
        self.pace(iam_propagation=2)
        attached = time.monotonic()
        self.connect_policy(self.w.users)
        self.assertRefused(self.connect(), ACCESS_DENIED)
        self.assertLess(time.monotonic() - attached, 2, "too slow to see the refusal")
        self.assertLogged(IAM_REFUSED, "is not allowed rds-db:connect")
        time.sleep(max(0.0, attached + 2.1 - time.monotonic()))
        self.assertRows(self.connect(), [[[1]]])
        # And a removal takes as long: still honoured at once.
        self.c["iam"].delete_role_policy(RoleName="fn-role", PolicyName="connect")
        self.assertRows(self.connect(), [[[1]]])


# --- 7. the proxy's own login -------------------------------------------------


class ProxyLogin(DataPathTest):
    def setUp(self):
        super().setUp()
        self.modify_pool(ConnectionBorrowTimeout=1)

    def assertBorrowTimedOut(self, got):
        self.assertRefused(got, BORROW_TIMEOUT)
        self.assertGreaterEqual(got["after"], 1, got)
        self.assertLess(got["after"], 3, got)  # the 1 s timeout, not 120 s
        self.assertLogged("[WARN]", "Timed-out waiting to acquire database connection")

    def test_a_proxy_role_that_cannot_read_the_secret(self):
        self.c["iam"].delete_role_policy(RoleName="proxy-role", PolicyName="secret")
        self.assertRefused(self.connect(), ACCESS_DENIED)
        self.assertLogged("[WARN]", "Credentials couldn't be retrieved", self.w.secret)
        health = self.health()
        self.assertEqual(health["Reason"], "AUTH_FAILURE")
        self.assertIn("Credentials couldn't be retrieved", health["Description"])

    def test_a_wrong_password_in_the_secret_keeps_the_client_waiting_then_9501(self):
        self.assertEqual(self.health(), {"State": "AVAILABLE"})
        self.c["secretsmanager"].put_secret_value(
            SecretId=self.w.secret,
            SecretString=json.dumps({"username": "admin", "password": "not-" + PASSWORD}),
        )
        self.assertBorrowTimedOut(self.connect())
        self.assertLogged("[WARN]", "The proxy could not log in to the database as admin",
                          "Access denied")
        health = self.health()
        self.assertEqual((health["State"], health["Reason"]), ("UNAVAILABLE", "AUTH_FAILURE"))
        self.assertIn("The proxy could not log in to the database as admin", health["Description"])

    def test_a_db_whose_groups_do_not_admit_the_proxy(self):
        self.revoke(self.w.db_sg, self.w.proxy_sg, 3306)
        self.assertBorrowTimedOut(self.connect())
        self.assertLogged("[WARN]", "Database host couldn't be reached")
        health = self.health()
        self.assertEqual((health["State"], health["Reason"]), ("UNAVAILABLE", "CONNECTION_FAILED"))
        # Admitted again: the next client gets through, the target is available.
        self.admit_proxy(self.w)
        self.assertRows(self.connect(), [[[1]]])
        self.assertEqual(self.health(), {"State": "AVAILABLE"})

    def test_an_unknown_database_is_the_dbs_own_error(self):
        got = self.connect(database="nosuchdb")
        self.assertEqual(got["code"], 1049, got)
        self.assertIn("nosuchdb", got["message"])
        self.assertLogged("[WARN]", "Request returned an error", "nosuchdb")


# --- 8. passwords -------------------------------------------------------------


class Passwords(DataPathTest):
    AUTH = {"IAMAuth": "DISABLED", "ClientPasswordAuthType": "MYSQL_NATIVE_PASSWORD"}
    PROXY = {"RequireTLS": False}

    def test_the_secrets_password_is_accepted_and_a_wrong_one_refused(self):
        ok, plain, wrong, token = self.connect_all(
            dict(password=PASSWORD, queries=["SELECT CURRENT_USER()"]),
            dict(password=PASSWORD, tls="none"),  # RequireTLS off, no IAM: TLS is optional
            dict(password="not-" + PASSWORD),
            dict(),  # an IAM token is no password
        )
        self.assertRows(ok, [[["admin@%"]]])
        self.assertRows(plain, [[[1]]])
        self.assertRefused(wrong, ACCESS_DENIED)
        self.assertRefused(token, ACCESS_DENIED)
        self.assertEqual(
            len(self.assertLogged("[WARN]", "The password that was provided for the role admin "
                                            "is wrong.")), 2)

    def test_an_unknown_user_has_no_credentials(self):
        self.assertRefused(self.connect(user="nobody", password=PASSWORD),
                           (1045, "Access denied for user 'nobody'@'%' (using password: YES)"))
        self.assertLogged("This RDS proxy has no credentials for the role nobody.")


# --- 9. the pool ----------------------------------------------------------------


class Pool(DataPathTest):
    def test_one_connection_allowed_a_second_client_waits_then_the_idle_one_is_reused(self):
        # db.t3.micro MySQL: max_connections 60; 1 % of it is 1 connection.
        self.modify_pool(MaxConnectionsPercent=1, MaxIdleConnectionsPercent=1,
                         ConnectionBorrowTimeout=1)
        with ThreadPoolExecutor(1) as pool:
            holding = pool.submit(self.connect, hold=4,
                                  queries=["SET @mark = 'first'", "SELECT CONNECTION_ID()"])
            # The first client has the connection (and holds it for 4 s).
            wait_until(lambda: self.datapoints("DatabaseConnections"), timeout=5)
            second = self.connect()
            self.assertRefused(second, BORROW_TIMEOUT)
            self.assertGreaterEqual(second["after"], 1, second)
            first = holding.result()
        self.assertNotIn("error", first, first)
        self.assertLogged("[WARN]", "Timed-out waiting to acquire database connection")
        third = self.connect(queries=["SELECT CONNECTION_ID()", "SELECT @mark"])
        # The same DB connection, reset: the first client's variable is gone.
        self.assertRows(third, [first["rows"][1], [[None]]])
        self.assertEqual(self.datapoints("MaxDatabaseConnectionsAllowed"), [1.0])
        self.assertEqual(self.peak("DatabaseConnections"), 1.0)

    def test_a_pool_change_keeps_the_settings_it_does_not_name(self):
        self.modify_pool(MaxConnectionsPercent=40, MaxIdleConnectionsPercent=10)
        self.modify_pool(ConnectionBorrowTimeout=5)
        config = self.c["rds"].describe_db_proxy_target_groups(DBProxyName="p1")[
            "TargetGroups"][0]["ConnectionPoolConfig"]
        self.assertEqual((config["MaxConnectionsPercent"], config["MaxIdleConnectionsPercent"],
                          config["ConnectionBorrowTimeout"]), (40, 10, 5))


# --- 10. IdleClientTimeout -------------------------------------------------


class IdleClient(DataPathTest):
    def test_a_client_idle_past_the_timeout_loses_its_connection(self):
        self.modify_proxy(IdleClientTimeout=1)
        got = self.connect(queries=["SELECT 1", "SELECT 2"], sleep=2)
        self.assertEqual(got["rows"], [[[1]]], got)
        self.assertRefused(got, (2013, "Lost connection to MySQL server during query"))
        self.assertLogged("The client connection closed. Reason: the client was idle longer than "
                          "IdleClientTimeout (1 seconds).")


# --- 11. pinning ------------------------------------------------------------------


class Pinning(DataPathTest):
    def test_a_user_variable_pins_tracked_variables_do_not(self):
        pins, tracked = self.connect_all(
            dict(queries=["SET @x = 1", "SELECT @x"]),
            dict(queries=["SET autocommit = 0", "SET NAMES utf8mb4",
                          "SET SESSION sql_mode = 'ANSI_QUOTES'", "SELECT 1"]),
        )
        self.assertRows(pins, [[], [[1]]])
        self.assertNotIn("error", tracked, tracked)
        self.assertLogged("[WARN]", "The client session was pinned to the database connection",
                          "Reason: SQL changed session settings that the proxy doesn't track. "
                          'Digest: "SET @x = 1".')
        self.assertEqual(len(self.pinned_lines()), 1, self.log_lines())  # not the tracked ones
        self.assertEqual(self.peak("DatabaseConnectionsCurrentlySessionPinned"), 1.0)

    def test_exclude_variable_sets_lets_a_variable_set_through(self):
        self.modify_pool(SessionPinningFilters=["EXCLUDE_VARIABLE_SETS"])
        self.assertRows(self.connect(queries=["SET @x = 1", "SELECT @x"]), [[], [[1]]])
        # Not a variable set: still pins.
        self.assertNotIn("error", self.connect(queries=["CREATE TEMPORARY TABLE t (i INT)"]))
        self.assertLogged("pinned", "a temporary table")
        self.assertEqual(len(self.pinned_lines()), 1, self.log_lines())


class PinningRules(unittest.TestCase):
    """pinning.pins, statement by statement."""

    def assertPins(self, family, text, prepared=False, filters=()):
        self.assertIsNotNone(pinning.pins(family, text, prepared, filters), text)

    def assertFree(self, family, text, filters=()):
        self.assertIsNone(pinning.pins(family, text, False, filters), text)

    def test_mysql(self):
        for text in ("SET @x = 1", "set @@session.foreign_key_checks = 0",
                     "SET SESSION max_execution_time = 10", "SET autocommit = 0, @y = 2",
                     "LOCK TABLES t READ", "CREATE TEMPORARY TABLE t (i INT)",
                     "SELECT GET_LOCK('a', 1)", "PREPARE s FROM 'SELECT 1'",
                     "FLUSH TABLES WITH READ LOCK"):
            self.assertPins("MYSQL", text)
        for text in ("SELECT 1", "SET autocommit = 0", "SET NAMES utf8mb4",
                     "SET CHARACTER SET utf8", "SET SESSION sql_mode = 'ANSI'",
                     "SET @@session.time_zone = '+00:00'", "SET @@tx_isolation = 'READ-COMMITTED'",
                     "SET TRANSACTION ISOLATION LEVEL READ COMMITTED",
                     "SET autocommit = 1, time_zone = '+00:00'",
                     "SELECT 'SET @x = 1'", "INSERT INTO t VALUES ('LOCK TABLES')"):
            self.assertFree("MYSQL", text)
        excluded = ["EXCLUDE_VARIABLE_SETS"]
        self.assertFree("MYSQL", "SET @x = 1", excluded)
        self.assertFree("MYSQL", "SET SESSION max_execution_time = 10", excluded)
        self.assertPins("MYSQL", "CREATE TEMPORARY TABLE t (i INT)", filters=excluded)
        self.assertPins("MYSQL", "LOCK TABLES t WRITE", filters=excluded)

    def test_mysql_session_transaction_characteristics_are_tracked(self):
        self.assertFree("MYSQL", "SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
        self.assertFree("MYSQL", "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")

    def test_postgresql(self):
        for text in ("SET client_encoding TO 'UTF8'", "RESET ALL", "DISCARD TEMP",
                     "CREATE TEMP TABLE t (i int)", "DECLARE c CURSOR FOR SELECT 1",
                     "LISTEN ch", "SELECT nextval('s')", "SELECT pg_advisory_lock(1)",
                     "PREPARE p AS SELECT 1", "LOAD 'auto_explain'"):
            self.assertPins("POSTGRESQL", text)
        for text in ("SELECT 1", "SELECT currval('s')", "INSERT INTO t VALUES ('SET x')"):
            self.assertFree("POSTGRESQL", text)
        # EXCLUDE_VARIABLE_SETS is MySQL's: PostgreSQL's SET still pins.
        self.assertPins("POSTGRESQL", "SET search_path TO a", filters=["EXCLUDE_VARIABLE_SETS"])

    def test_every_engine(self):
        for family in ("MYSQL", "POSTGRESQL"):
            self.assertPins(family, "SELECT 1", prepared=True)
            self.assertPins(family, "SELECT '" + "x" * pinning.LONG_STATEMENT + "'")
            self.assertFree(family, "SELECT '" + "x" * (pinning.LONG_STATEMENT - 20) + "'")


# --- 12. InitQuery ------------------------------------------------------------------


class InitQuery(DataPathTest):
    def test_the_init_query_runs_on_a_new_db_connection(self):
        self.modify_pool(InitQuery="SET SESSION sql_mode='ANSI_QUOTES'")
        self.assertRows(self.connect(queries=["SELECT @@SESSION.sql_mode"]), [[["ANSI_QUOTES"]]])

    def test_the_init_query_holds_for_the_next_client_of_a_pooled_connection(self):
        self.modify_pool(InitQuery="SET SESSION sql_mode='ANSI_QUOTES'")
        first = self.connect(queries=["SELECT CONNECTION_ID(), @@SESSION.sql_mode"])
        second = self.connect(queries=["SELECT CONNECTION_ID(), @@SESSION.sql_mode"])
        self.assertEqual(first["rows"][0][0][0], second["rows"][0][0][0])  # reused
        self.assertRows(second, [[[first["rows"][0][0][0], "ANSI_QUOTES"]]])


# --- 13. metrics ------------------------------------------------------------------


class Metrics(DataPathTest):
    def test_a_session_publishes_the_proxys_metrics(self):
        self.assertNotIn("error", self.connect(queries=["SELECT 1", "SELECT 2", "SELECT 3"]))
        self.assertEqual(self.peak("ClientConnections"), 1.0)
        self.assertEqual(self.peak("DatabaseConnections"), 1.0)
        self.assertEqual(self.datapoints("MaxDatabaseConnectionsAllowed"), [60.0])  # 100 % of 60
        # The three queries, and what the driver says first (SET AUTOCOMMIT).
        self.assertGreaterEqual(sum(self.datapoints("QueryRequests", stat="Sum")), 3)
        self.assertTrue(self.datapoints("DatabaseConnectionsBorrowLatency"))
        # The client is gone: ClientConnections went back to 0.
        self.assertEqual(self.datapoints("ClientConnections", stat="Minimum"), [0.0])


# --- 14. a proxy endpoint ------------------------------------------------------------


class Endpoint(DataPathTest):
    def test_an_endpoint_carries_connections_by_its_own_name_and_its_own_groups(self):
        ep_sg = self.group(self.w.vpc, "endpoint")
        ep = self.c["rds"].create_db_proxy_endpoint(
            DBProxyName="p1", DBProxyEndpointName="ep1", VpcSubnetIds=self.w.subnets,
            VpcSecurityGroupIds=[ep_sg], TargetRole="READ_WRITE",
        )["DBProxyEndpoint"]
        wait_until(lambda: self.c["rds"].describe_db_proxy_endpoints(
            DBProxyEndpointName="ep1")["DBProxyEndpoints"][0]["Status"] == "available")
        host = ep["Endpoint"]
        self.assertNotEqual(host, self.w.host)
        # The endpoint's group does not admit the function's (the proxy's does).
        self.assertTimedOut(self.connect(host=host, connect_timeout=1), 1)
        self.admit(ep_sg, self.w.fn_sg, 3306)
        got, wrong_token = self.connect_all(
            dict(host=host, queries=["SELECT DATABASE()"]), dict(host=host, token_host=self.w.host)
        )
        self.assertRows(got, [[[DATABASE]]])
        self.assertEqual(got["peer"]["subjectAltName"], [["DNS", host]])
        self.assertLogged("[proxyEndpoint=ep1]", "A new client connected")
        # A token made for the proxy's own endpoint is not one for this endpoint.
        self.assertRefused(wrong_token, ACCESS_DENIED)
        self.assertLogged("[proxyEndpoint=ep1]", IAM_REFUSED, f"not for this proxy endpoint {host}")


# --- 15. policy evaluation ----------------------------------------------------------


ROLE = f"arn:aws:iam::{ACCOUNT}:role/fn-role"
RESOURCE = f"arn:aws:rds-db:{REGION}:{ACCOUNT}:dbuser:prx-abc/admin"
CONTEXT = {"aws:PrincipalArn": ROLE, "aws:PrincipalAccount": ACCOUNT}


def doc(*statements):
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(condition=None, effect="Allow", **fields):
    statement = {"Effect": effect, "Action": "rds-db:connect", "Resource": RESOURCE, **fields}
    if condition is not None:
        statement["Condition"] = condition
    return statement


class PolicyEvaluation(unittest.TestCase):
    """policy.allows: statements, wildcards and each condition operator."""

    def allows(self, *statements, context=CONTEXT, action="rds-db:connect", resource=RESOURCE):
        return policy.allows([doc(*statements)], action, resource, context)

    def holds(self, operator, key, value, context=CONTEXT):
        return self.allows(allow({operator: {key: value}}), context=context)

    def test_allow_deny_and_wildcards(self):
        self.assertTrue(self.allows(allow()))
        self.assertFalse(self.allows())
        self.assertFalse(self.allows(allow(), allow(effect="Deny")))
        self.assertTrue(self.allows(allow(Resource=RESOURCE.replace("/admin", "/*"))))
        self.assertTrue(self.allows(allow(Resource=RESOURCE.replace("prx-abc", "prx-???"))))
        self.assertFalse(self.allows(allow(Resource=RESOURCE.replace("prx-abc", "prx-xyz"))))
        self.assertTrue(self.allows(allow(Action="RDS-DB:*")))  # actions ignore case
        self.assertFalse(self.allows(allow(Resource=RESOURCE.upper())))  # resources do not
        self.assertFalse(self.allows(
            {"Effect": "Allow", "NotAction": "rds-db:connect", "Resource": RESOURCE}))
        self.assertTrue(self.allows({"Effect": "Allow", "NotAction": "s3:*", "Resource": "*"}))
        self.assertFalse(self.allows({"Effect": "Allow", "Action": "*", "NotResource": RESOURCE}))
        # Several documents: a Deny in one beats an Allow in another.
        self.assertFalse(policy.allows([doc(allow()), doc(allow(effect="Deny"))],
                                       "rds-db:connect", RESOURCE, CONTEXT))

    def test_string_operators(self):
        self.assertTrue(self.holds("StringEquals", "aws:PrincipalAccount", ACCOUNT))
        self.assertFalse(self.holds("StringEquals", "aws:PrincipalAccount", "999999999999"))
        self.assertTrue(self.holds("StringEquals", "aws:PrincipalAccount", ["1", ACCOUNT]))  # any
        self.assertFalse(self.holds("StringEquals", "aws:PrincipalArn", ROLE.upper()))
        self.assertTrue(self.holds("StringEqualsIgnoreCase", "aws:PrincipalArn", ROLE.upper()))
        self.assertFalse(self.holds("StringNotEqualsIgnoreCase", "aws:PrincipalArn", ROLE.upper()))
        self.assertTrue(self.holds("StringNotEquals", "aws:PrincipalAccount", "999999999999"))
        self.assertFalse(self.holds("StringNotEquals", "aws:PrincipalAccount", ACCOUNT))
        self.assertTrue(self.holds("StringLike", "aws:PrincipalArn", "arn:aws:iam::*:role/fn-*"))
        self.assertFalse(self.holds("StringLike", "aws:PrincipalArn", "*:role/other"))
        self.assertTrue(self.holds("StringNotLike", "aws:PrincipalArn", "*:role/other"))
        self.assertFalse(self.holds("StringNotLike", "aws:PrincipalArn", "*:role/fn-?ole"))
        # Condition keys ignore case.
        self.assertTrue(self.holds("StringEquals", "AWS:principalaccount", ACCOUNT))

    def test_arn_operators(self):
        other = ROLE.replace("fn-role", "other-role")
        self.assertTrue(self.holds("ArnEquals", "aws:PrincipalArn", ROLE))
        self.assertFalse(self.holds("ArnEquals", "aws:PrincipalArn", other))
        self.assertTrue(self.holds("ArnLike", "aws:PrincipalArn", "arn:aws:iam::*:role/fn-*"))
        # A wildcard stays within its field of the ARN.
        self.assertFalse(self.holds("ArnLike", "aws:PrincipalArn", "arn:aws:*:role/fn-role"))
        self.assertTrue(self.holds("ArnNotEquals", "aws:PrincipalArn", other))
        self.assertFalse(self.holds("ArnNotEquals", "aws:PrincipalArn", ROLE))
        self.assertTrue(self.holds("ArnNotLike", "aws:PrincipalArn", "arn:aws:iam::*:role/o*"))
        self.assertFalse(self.holds("ArnNotLike", "aws:PrincipalArn", "arn:aws:iam::*:role/f*"))

    def test_bool_and_null(self):
        self.assertTrue(self.holds("Bool", "aws:SecureTransport", "true",
                                   context={**CONTEXT, "aws:SecureTransport": True}))
        self.assertFalse(self.holds("Bool", "aws:SecureTransport", "true",
                                    context={**CONTEXT, "aws:SecureTransport": False}))
        self.assertFalse(self.holds("Bool", "aws:SecureTransport", "true"))  # absent
        self.assertTrue(self.holds("Null", "aws:SecureTransport", "true"))  # absent: null
        self.assertFalse(self.holds("Null", "aws:PrincipalArn", "true"))
        self.assertTrue(self.holds("Null", "aws:PrincipalArn", "false"))
        self.assertFalse(self.holds("Null", "aws:SecureTransport", "false"))

    def test_a_missing_key_if_exists_and_negated_operators(self):
        # Any other key counts as absent: a condition on it is false...
        self.assertFalse(self.holds("StringEquals", "aws:SourceVpc", "vpc-1"))
        self.assertFalse(self.holds("ArnLike", "aws:SourceArn", "*"))
        # ...unless IfExists...
        self.assertTrue(self.holds("StringEqualsIfExists", "aws:SourceVpc", "vpc-1"))
        self.assertTrue(self.holds("ArnLikeIfExists", "aws:SourceArn", "arn:aws:s3:::b"))
        # ...which still tests a key that is there.
        self.assertFalse(self.holds("StringEqualsIfExists", "aws:PrincipalAccount", "1"))
        self.assertTrue(self.holds("StringEqualsIfExists", "aws:PrincipalAccount", ACCOUNT))
        # A negated operator holds for a missing key.
        for operator in ("StringNotEquals", "StringNotEqualsIgnoreCase", "StringNotLike",
                         "ArnNotEquals", "ArnNotLike"):
            self.assertTrue(self.holds(operator, "aws:SourceVpc", "x"), operator)
        # A Deny with a negated operator on a missing key denies.
        self.assertFalse(self.allows(allow(), allow(
            {"StringNotEquals": {"aws:SourceVpc": "vpc-1"}}, effect="Deny")))

    def test_every_condition_must_hold(self):
        both = {"ArnEquals": {"aws:PrincipalArn": ROLE},
                "StringEquals": {"aws:PrincipalAccount": ACCOUNT}}
        self.assertTrue(self.allows(allow(both)))
        one_wrong = {"ArnEquals": {"aws:PrincipalArn": ROLE},
                     "StringEquals": {"aws:PrincipalAccount": "999999999999"}}
        self.assertFalse(self.allows(allow(one_wrong)))
        two_keys = {"StringEquals": {"aws:PrincipalArn": ROLE, "aws:PrincipalAccount": "9"}}
        self.assertFalse(self.allows(allow(two_keys)))

    def test_an_unknown_operator_makes_its_statement_not_apply(self):
        unknown = {"NumericLessThan": {"aws:MultiFactorAuthAge": "3600"}}
        self.assertFalse(self.allows(allow(unknown)))  # the Allow grants nothing
        # The Deny denies nothing.
        self.assertTrue(self.allows(allow(), allow(unknown, effect="Deny")))
        self.assertFalse(self.allows(allow({"StringEqualsSometimes": {"aws:PrincipalArn": ROLE}})))


class PolicyPropagation(AwsTest):
    """policy.documents_as_of: a role's policies as IAM saw them
    iam_propagation seconds ago."""

    def setUp(self):
        super().setUp()
        policy.reset()

    def put(self, name):
        self.c["iam"].put_role_policy(RoleName="r", PolicyName=name,
                                      PolicyDocument=json.dumps(doc(allow())))

    def seen(self):
        """How many policy documents of role r callers see."""
        docs = policy.documents_as_of(ACCOUNT, f"arn:aws:iam::{ACCOUNT}:role/r")
        return len(docs)

    def test_changes_reach_callers_after_the_delay(self):
        self.pace(iam_propagation=0.6)
        self.c["iam"].create_role(RoleName="r", AssumeRolePolicyDocument=json.dumps(doc()))
        self.put("one")
        self.assertEqual(self.seen(), 0)  # 0.6 s ago, neither the role nor its policy
        time.sleep(0.7)
        self.assertEqual(self.seen(), 1)
        changed = time.monotonic()
        self.put("two")
        self.assertEqual(self.seen(), 1)
        time.sleep(max(0.0, changed + 0.7 - time.monotonic()))
        self.assertEqual(self.seen(), 2)
        self.c["iam"].delete_role_policy(RoleName="r", PolicyName="one")
        self.c["iam"].delete_role_policy(RoleName="r", PolicyName="two")
        self.assertEqual(self.seen(), 2)
        wait_until(lambda: self.seen() == 0, timeout=2)
        # No delay: as IAM is now.
        self.pace(iam_propagation=0)
        self.put("three")
        self.assertEqual(self.seen(), 1)

    def test_a_role_made_since_has_no_policies_yet(self):
        self.pace(iam_propagation=0.6)
        # IAM's first write seen: the account before it is history, without r.
        self.c["iam"].create_role(RoleName="other", AssumeRolePolicyDocument=json.dumps(doc()))
        made = time.monotonic()
        self.c["iam"].create_role(RoleName="r", AssumeRolePolicyDocument=json.dumps(doc()))
        self.put("one")
        self.assertEqual(self.seen(), 0)
        time.sleep(max(0.0, made + 0.7 - time.monotonic()))
        self.assertEqual(self.seen(), 1)
