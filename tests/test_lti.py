"""mpgrade as an LTI 1.3 tool, against a platform of the tests' own on loopback (lti_platform).

The whole flow with real JWTs: a student launches from the LMS (OIDC login, signed id_token),
the tool reads the roster (NRPS) to learn that the LMS user ``lti-user-alice`` is the student
``s-alice`` of the submissions, a submission is graded, and its score arrives in the
gradebook (AGS) in a line item the tool made once, with a token the platform issued for the
tool's signed client assertion. Then what must fail does: a forged token, a replay, another
tool's token, an expired one; a platform that answers 500 once still gets the score; and a
grader error never wipes a good grade.
"""

from __future__ import annotations

import json
import stat
import time

import jwt
import pytest
from click.testing import CliRunner

from grader.cli.main import main
from grader.sandbox.local import LocalSandbox

from .lti_helpers import fresh_state, launch, login, lti, platform, tiny  # noqa: F401 - fixtures
from .lti_platform import SCOPE_SCORE, new_key
from .service_helpers import RIGHT, WRONG, wait_for
from .test_service import finished, serve, submit, tokens  # noqa: F401 - fixtures

ALICE = "lti-user-alice"


def graded(client, tokens, student: str, source: str) -> dict:  # noqa: F811
    response = submit(client, tokens["cs101"], "tiny", {"add.py": source.encode()}, student=student)
    assert response.status_code in (200, 202), response.text
    return finished(client, tokens["cs101"], response.json()["job_id"])


def grade_of(platform, user: str = ALICE) -> float | None:  # noqa: F811
    [item] = platform.lineitems
    return platform.grades.get((item["id"], user), "absent")


def test_launch_roster_line_item_and_score_end_to_end(lti, platform, tokens):  # noqa: F811
    client = lti()
    page = launch(client, platform)
    assert page.status_code == 200, page.text
    assert "No result yet" in page.text and "Alice Example" in page.text
    assert "script-src" not in page.headers["content-security-policy"]
    # framed by the LMS only: its issuer's origin and the page around the launch (signed return_url)
    assert page.headers["content-security-policy"].endswith(
        f"frame-ancestors {platform.issuer} https://school.example.edu")
    # the roster is read, all its pages, with a token from the client-credentials grant
    wait_for(lambda: len([p for m, p in platform.requests if p.startswith("/nrps")]) == 2, 30, what="the roster")
    assert ("POST", "/token") in platform.requests and platform.jtis

    # the submission carries the SIS id; the gradebook gets the LMS user id (sub) from the roster
    job = graded(client, tokens, "s-alice", RIGHT)
    assert job["result"]["score"] == 100
    wait_for(lambda: platform.grades, 30, what="the score on the platform")
    [item] = platform.lineitems
    assert item["resourceId"] == "tiny" and item["scoreMaximum"] == 100 and item["resourceLinkId"] == "link-1"
    [score] = platform.scores
    assert score["userId"] == ALICE and score["scoreGiven"] == 100 and score["scoreMaximum"] == 100
    assert score["gradingProgress"] == "FullyGraded" and score["activityProgress"] == "Completed"
    assert grade_of(platform) == 100

    # a second graded submission: a new score in the same line item (found, not made again)
    job = graded(client, tokens, "s-alice", WRONG)
    wait_for(lambda: len(platform.scores) == 2, 30, what="the second score")
    assert len(platform.lineitems) == 1 and grade_of(platform) == 0
    records = client.app.state.lti.records
    [entry] = wait_for(lambda: records.scores(job["job_id"]), 30, what="the score's record")
    assert entry["status"] == "sent: 0/100"
    # one token for the roster, one for the gradebook: the second score reused it
    assert platform.requests.count(("POST", "/token")) == 2

    # the launch page shows the latest result and its visible feedback, nothing hidden
    page = launch(client, platform)
    assert "Score: 0 / 100" in page.text and "add(1, 2) is 3" in page.text and "Hint: return a + b" in page.text
    assert "10**12" not in page.text  # the hidden test

    from grader.service.lti.ags import score_for

    assert score_for(job["result"], ALICE)["scoreGiven"] == 0
    assert score_for({**job["result"], "gradable": False}, ALICE) is None  # marked no grade: none


TEACHER = {"sub": "lti-user-teacher", "name": "T", "email": "t@example.edu",
           "https://purl.imsglobal.org/spec/lti/claim/lis": {},
           "https://purl.imsglobal.org/spec/lti/claim/roles": [
               "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor"]}


def test_after_the_teachers_launch_every_student_on_the_roster_gets_scores(lti, platform, tokens,  # noqa: F811
                                                                            monkeypatch):
    """Students need not launch: the teacher's launch gives the gradebook and the roster."""
    from grader.service.lti import tool

    client = lti()
    assert launch(client, platform, **TEACHER).status_code == 200
    records = client.app.state.lti.records
    wait_for(lambda: records.roster_synced(platform.issuer, platform.client_id, platform.context_id), 30,
             what="the roster")
    graded(client, tokens, "s-bob", RIGHT)  # Bob never launched; the roster says s-bob is lti-user-bob
    wait_for(lambda: platform.grades, 30, what="Bob's score")
    assert grade_of(platform, "lti-user-bob") == 100 and [s["userId"] for s in platform.scores] == ["lti-user-bob"]

    # a student who joined after the roster was read: it is read again, then the score goes
    monkeypatch.setattr(tool, "ROSTER_RETRY", 0.0)
    platform.members.append({"user_id": "lti-user-carol", "lis_person_sourcedid": "s-carol", "name": "Carol"})
    graded(client, tokens, "s-carol", WRONG)
    wait_for(lambda: len(platform.scores) == 2, 30, what="Carol's score")
    assert grade_of(platform, "lti-user-carol") == 0
    # nobody on the roster has this id: nothing is sent, nobody else's grade changes
    job = graded(client, tokens, "s-stranger", RIGHT)
    time.sleep(1)
    assert len(platform.scores) == 2 and records.scores(job["job_id"]) == []


def test_a_launch_that_names_its_line_item_gets_scores_there_and_no_new_one(lti, platform, tokens):  # noqa: F811
    """Canvas and Moodle bind a line item to an assignment made with the tool (AGS ``lineitem``)."""
    from .lti_platform import AGS

    item = {"id": f"{platform.issuer}/ags/{platform.context_id}/lineitems/77", "label": "Made by Canvas",
            "scoreMaximum": 50, "resourceLinkId": "link-1"}
    platform.lineitems.append(item)
    client = lti()
    launch(client, platform, **{AGS: {"scope": [SCOPE_SCORE], "lineitem": item["id"]}})
    graded(client, tokens, "s-alice", RIGHT)
    wait_for(lambda: platform.grades, 30, what="the score")
    assert platform.lineitems == [item] and platform.grades == {(item["id"], ALICE): 100}
    assert ("GET", f"/ags/{platform.context_id}/lineitems") not in platform.requests  # nothing looked up


def test_a_revoked_token_is_replaced_once(lti, platform, tokens):  # noqa: F811
    client = lti()
    launch(client, platform)
    graded(client, tokens, "s-alice", RIGHT)
    wait_for(lambda: platform.grades, 30, what="the first score")
    platform.tokens.clear()  # the platform revokes every token it gave
    job = graded(client, tokens, "s-alice", WRONG)
    records = client.app.state.lti.records
    [entry] = wait_for(lambda: records.scores(job["job_id"]), 30, what="the second score's record")
    assert entry["status"] == "sent: 0/100" and grade_of(platform) == 0


def test_a_grade_given_before_the_first_launch_is_sent_at_the_launch(lti, platform, tokens):  # noqa: F811
    client = lti()
    graded(client, tokens, "s-alice", RIGHT)
    assert platform.scores == []  # nobody launched yet: no gradebook is known
    page = launch(client, platform)
    assert "Score: 100 / 100" in page.text
    wait_for(lambda: platform.grades, 30, what="the score on the platform")
    assert grade_of(platform) == 100
    launch(client, platform)  # a second launch does not send the same grade again
    time.sleep(0.5)
    assert len(platform.scores) == 1


class BreaksAfter(LocalSandbox):
    """The local sandbox for its first ``good`` runs, then a sandbox that always fails."""

    def __init__(self, good: int) -> None:
        super().__init__()
        self.good = good

    def run(self, job):
        if self.good > 0:
            self.good -= 1
            return super().run(job)
        raise RuntimeError("the sandbox failed")


def test_a_student_graded_100_who_then_hits_a_grader_error_still_has_100_on_the_platform(lti, platform, tokens):  # noqa: F811
    client = lti(sandbox=BreaksAfter(good=1))
    launch(client, platform)
    graded(client, tokens, "s-alice", RIGHT)
    wait_for(lambda: platform.grades, 30, what="the first score")
    assert grade_of(platform) == 100

    job = graded(client, tokens, "s-alice", RIGHT + "\n# resubmitted\n")
    assert job["result"]["status"] == "error" and "the sandbox failed" in job["result"]["message"], job["result"]
    records = client.app.state.lti.records
    [entry] = wait_for(lambda: records.scores(job["job_id"]), 30, what="the withheld score's record")
    assert entry["status"].startswith("withheld: ") and entry["sub"] == ALICE
    assert len(platform.scores) == 1 and grade_of(platform) == 100  # nothing sent: the 100 stays
    page = launch(client, platform)
    assert "could not be graded" in page.text and "grade you had before is kept" in page.text
    assert "on our side" in page.text and "the sandbox failed" not in page.text  # diagnostics stay ours


def test_a_platform_that_answers_500_then_200_gets_the_score(lti, platform, tokens):  # noqa: F811
    client = lti()
    launch(client, platform)
    platform.score_statuses = [500]
    job = graded(client, tokens, "s-alice", RIGHT)
    records = client.app.state.lti.records
    wait_for(lambda: [s for s in records.scores(job["job_id"]) if s["status"].startswith("sent")], 30,
             what="the score sent after a retry")
    assert [s["status"] for s in platform.scores] == [500, 200]
    assert grade_of(platform) == 100


def test_a_platform_that_keeps_failing_leaves_a_failed_status_not_a_crash(lti, platform, tokens):  # noqa: F811
    client = lti(callback_attempts=2)
    launch(client, platform)
    platform.score_statuses = [503, 503]
    job = graded(client, tokens, "s-alice", RIGHT)
    records = client.app.state.lti.records
    [entry] = wait_for(lambda: [s for s in records.scores(job["job_id"]) if s["status"].startswith("failed")],
                       30, what="the failed status")
    assert "HTTP 503 after 2 attempt(s)" in entry["status"] and platform.grades == {}


# --------------------------------------------------------------------------- refused launches


def post_launch(client, claims_or_token, state: str):
    return client.post("/lti/launch", data={"id_token": claims_or_token, "state": state})


def test_a_forged_id_token_is_refused_and_does_not_spend_the_login(lti, platform):  # noqa: F811
    client = lti()
    state, nonce = fresh_state(client, platform)
    forged = platform.sign(platform.claims(nonce), key=new_key())  # same kid, another key
    response = post_launch(client, forged, state)
    assert response.status_code == 401 and "signature" in response.json()["detail"]
    assert post_launch(client, platform.sign(platform.claims(nonce)), state).status_code == 200


def test_a_replayed_launch_is_refused(lti, platform):  # noqa: F811
    client = lti()
    state, nonce = fresh_state(client, platform)
    token = platform.sign(platform.claims(nonce))
    assert post_launch(client, token, state).status_code == 200
    again = post_launch(client, token, state)
    assert again.status_code == 400 and "state" in again.json()["detail"]
    other_state, _ = fresh_state(client, platform)  # the same token with a new login
    replay = post_launch(client, token, other_state)
    assert replay.status_code == 401 and "nonce" in replay.json()["detail"]


def test_the_nonce_store_refuses_a_nonce_seen_before(lti, platform):  # noqa: F811
    records = lti().app.state.lti.records
    assert records.use_nonce(platform.issuer, "n-1", int(time.time()) + 60) is True
    assert records.use_nonce(platform.issuer, "n-1", int(time.time()) + 60) is False


@pytest.mark.parametrize(("claims", "why"), [
    ({"aud": "another-tool"}, "not for this tool"),
    ({"aud": ["another-tool", "mpgrade-tool-17"]}, "azp"),
    ({"iss": "https://evil.example"}, "issuer"),
    ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 4000}, "expired"),
    ({"iat": int(time.time()) + 3600, "exp": int(time.time()) + 7200}, "not valid"),
    ({"https://purl.imsglobal.org/spec/lti/claim/deployment_id": "deployment-2"}, "deployment"),
    ({"https://purl.imsglobal.org/spec/lti/claim/version": "1.1"}, "1.3.0"),
    ({"https://purl.imsglobal.org/spec/lti/claim/custom": {"assignment": "multiprocessing-basics"}}, "assignment"),
])
def test_a_token_with_a_wrong_claim_is_refused(lti, platform, claims, why):  # noqa: F811
    client = lti()
    state, nonce = fresh_state(client, platform)
    response = post_launch(client, platform.sign(platform.claims(nonce, **claims)), state)
    assert response.status_code in (400, 401), response.text
    assert why in response.json()["detail"], response.json()["detail"]


def test_a_token_without_a_nonce_or_with_another_is_refused(lti, platform):  # noqa: F811
    client = lti()
    state, _ = fresh_state(client, platform)
    response = post_launch(client, platform.sign(platform.claims("not-the-login's")), state)
    assert response.status_code == 401 and "nonce" in response.json()["detail"]
    response = post_launch(client, platform.sign(platform.claims("nonce-\u00e9\u4e2d")), state)  # not ASCII
    assert response.status_code == 401 and "nonce" in response.json()["detail"]
    claims = platform.claims("x")
    del claims["nonce"]
    assert post_launch(client, platform.sign(claims), state).status_code == 401


def test_an_unknown_state_or_platform_is_refused(lti, platform):  # noqa: F811
    client = lti()
    _, nonce = fresh_state(client, platform)
    assert post_launch(client, platform.sign(platform.claims(nonce)), "made-up").status_code == 400
    response = login(client, platform, iss="https://unregistered.example")
    assert response.status_code == 400 and "registered" in response.json()["detail"]
    assert login(client, platform, lti_deployment_id="other").status_code == 400


# --------------------------------------------------------------------------- keys, registration, CLI


def test_the_tool_key_is_made_once_private_and_published(lti, platform, tmp_path):  # noqa: F811
    client = lti()
    key_file = tmp_path / "lti" / "tool-key.pem"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "lti" / "platforms.json").stat().st_mode) == 0o600
    published = client.get("/lti/jwks").json()
    [key] = published["keys"]
    assert key["kty"] == "RSA" and key["alg"] == "RS256" and key["use"] == "sig" and "d" not in key
    before = key_file.read_bytes()
    from grader.service.lti.keys import ToolKey

    again = ToolKey.load_or_create(tmp_path / "lti")
    assert key_file.read_bytes() == before and again.jwks() == published
    # what the tool signs, the published key verifies
    claims = jwt.decode(again.sign({"iss": "x", "aud": "y"}), jwt.PyJWK(key).key, algorithms=["RS256"],
                        audience="y")
    assert claims["iss"] == "x"


def test_the_token_endpoint_refuses_another_tools_assertion(lti, platform):  # noqa: F811
    """The platform checks what the tool signs: an assertion by another key gets no token."""
    from grader.service.lti.keys import ToolKey
    from grader.service.lti.registry import Platform as Registration
    from grader.service.lti.token import Tokens
    from grader.service.lti.transport import PlatformError

    tool = lti().app.state.lti
    impostor = ToolKey(new_key(), tool.key.kid)
    with pytest.raises(PlatformError, match="HTTP 401"):
        Tokens(impostor, tool.transport).get(Registration.from_dict(platform.registration()), (SCOPE_SCORE,))
    assert any("invalid_client" in r for r in platform.refusals)


def test_the_openapi_spec_lists_the_lti_routes(lti, platform):  # noqa: F811
    spec = lti().get("/openapi.json").json()
    assert {"/lti/jwks", "/lti/login", "/lti/launch"} <= set(spec["paths"])
    launch_responses = spec["paths"]["/lti/launch"]["post"]["responses"]
    assert {"200", "400", "401", "413"} <= set(launch_responses)
    assert "text/html" in launch_responses["200"]["content"]


def test_register_list_and_remove_from_the_command_line(tmp_path):
    runner = CliRunner()
    for command in (["lti"], ["lti", "register"]):
        shown = runner.invoke(main, [*command, "--help"])
        assert shown.exit_code == 0 and "Example" in shown.output and "mpgrade lti register" in shown.output
    base = ["--data", str(tmp_path)]
    args = ["lti", "register", "--issuer", "https://canvas.instructure.com", "--client-id", "10000000000123",
            "--deployment-id", "42:abc", "--course", "cs101", "--assignment", "tiny",
            "--tool-url", "https://grader.example.edu",
            "--login-url", "https://sso.canvaslms.com/api/lti/authorize_redirect",
            "--token-url", "https://sso.canvaslms.com/login/oauth2/token",
            "--jwks-url", "https://sso.canvaslms.com/api/lti/security/jwks", *base]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "https://grader.example.edu/lti/login" in result.output
    listed = json.loads(runner.invoke(main, ["lti", "list", *base]).output)
    assert [p["client_id"] for p in listed] == ["10000000000123"]
    assert runner.invoke(main, args).exit_code == 0  # the same again replaces it
    assert len(json.loads(runner.invoke(main, ["lti", "list", *base]).output)) == 1

    bad = runner.invoke(main, [*args[:-2], "--token-url", "http://lms.example.edu/token", *base])
    assert bad.exit_code == 2 and "https" in bad.output and "Traceback" not in bad.output
    framed = runner.invoke(main, [*args, "--frame-origin", "https://canvas.example.edu"])
    assert framed.exit_code == 0, framed.output
    assert json.loads(runner.invoke(main, ["lti", "list", *base]).output)[0]["frame_origins"] == [
        "https://canvas.example.edu"]
    bad = runner.invoke(main, [*args, "--frame-origin", "https://canvas.example.edu/courses; script-src *"])
    assert bad.exit_code == 2 and "frame origin" in bad.output

    keys = runner.invoke(main, ["lti", "jwks", *base])
    assert keys.exit_code == 0 and json.loads(keys.output)["keys"][0]["kty"] == "RSA"
    assert "BEGIN PUBLIC KEY" in runner.invoke(main, ["lti", "jwks", "--pem", *base]).output

    gone = runner.invoke(main, ["lti", "remove", "--issuer", "https://canvas.instructure.com",
                                "--client-id", "10000000000123", *base])
    assert gone.exit_code == 0 and json.loads(runner.invoke(main, ["lti", "list", *base]).output) == []
    assert runner.invoke(main, ["lti", "remove", "--issuer", "x", "--client-id", "y", *base]).exit_code == 2


# --------------------------------------------------------------------------- the records, in both databases


@pytest.fixture(params=["sqlite", "postgres"])
def lti_store(request, tmp_path):
    """The service's store on SQLite or on a fresh PostgreSQL database (conftest.postgres_url)."""
    from grader.service.store import PostgresStore, open_store

    where = str(tmp_path / "service.db") if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    store = open_store(where)
    yield store
    if isinstance(store, PostgresStore):
        store.close()


def test_the_lti_records_keep_states_nonces_rosters_and_line_items(lti_store):
    from grader.service.lti.records import Launch, Records, State

    records = Records(lti_store)
    Records(lti_store)  # a second API process opening the same database: the tables are there
    records.add_state(State("s1", "n1", "https://lms", "c1", "https://tool/lti/launch"))
    assert records.state("s1").nonce == "n1" and records.state("nope") is None
    assert records.consume_state("s1") is True and records.consume_state("s1") is False
    assert records.state("s1") is None
    expires = int(time.time()) + 60
    assert records.use_nonce("https://lms", "n1", expires) and not records.use_nonce("https://lms", "n1", expires)
    assert records.use_nonce("https://other-lms", "n1", expires)  # nonces are per issuer

    launch = Launch("https://lms", "c1", "d1", "ctx", "teacher", "cs101", "tiny", "link", "https://lms/items", None,
                    ("score",), "https://lms/roster")
    records.add_launch(launch)
    records.add_launch(launch)  # the same launch again: updated, not doubled
    assert records.contexts("cs101", "tiny") == [launch] and records.contexts("cs101", "other") == []
    records.set_members("https://lms", "c1", "ctx", [("u-1", ["s-1", "one@x"], "One"), ("u-2", ["s-2"], "Two"),
                                                    ("u-3", ["shared@x"], ""), ("u-4", ["shared@x"], "")])
    assert records.member_for("https://lms", "c1", "ctx", "s-1") == "u-1"
    assert records.member_for("https://lms", "c1", "ctx", "one@x") == "u-1"
    assert records.member_for("https://lms", "c1", "ctx", "u-2") == "u-2"
    assert records.member_for("https://lms", "c1", "ctx", "s-") is None  # no prefix matches
    assert records.member_for("https://lms", "c1", "ctx", "shared@x") is None  # two members: nobody
    assert records.student_ids("https://lms", "c1", "ctx", "u-1") == ["u-1", "one@x", "s-1"]
    odd = 'o"dd\\id%_'  # quotes, a backslash and LIKE's wildcards are just characters
    records.set_members("https://lms", "c1", "ctx", [("u-5", [odd], "")])
    assert records.member_for("https://lms", "c1", "ctx", odd) == "u-5"
    assert records.member_for("https://lms", "c1", "ctx", 'o"dd\\id%%') is None
    records.set_members("https://lms", "c1", "ctx", [("u-1", ["s-1-new"], "One")])  # the member's ids replaced
    assert records.member_for("https://lms", "c1", "ctx", "s-1") is None
    assert records.member_for("https://lms", "c1", "ctx", "s-1-new") == "u-1"
    assert records.lineitem("https://lms", "c1", "ctx", "tiny") is None
    records.set_lineitem("https://lms", "c1", "ctx", "tiny", "https://lms/items/1")
    records.set_lineitem("https://lms", "c1", "ctx", "tiny", "https://lms/items/1")
    assert records.lineitem("https://lms", "c1", "ctx", "tiny") == "https://lms/items/1"
    records.set_score("job", "u-1", "https://lms/items/1", "failed: HTTP 500")
    records.set_score("job", "u-1", "https://lms/items/1", "sent: 10/10")
    assert records.scores("job") == [{"sub": "u-1", "lineitem": "https://lms/items/1", "status": "sent: 10/10"}]


def test_a_broken_platforms_file_is_a_503_that_names_no_path(lti, platform, tmp_path):  # noqa: F811
    client = lti()
    (tmp_path / "lti" / "platforms.json").write_text("{not json")
    response = login(client, platform)
    assert response.status_code == 503 and "registrations cannot be read" in response.json()["detail"]
    assert str(tmp_path) not in response.text


def test_serve_with_a_broken_tool_key_is_one_line_and_exit_2(tmp_path, tokens):  # noqa: F811
    from grader.service import auth

    from .conftest import REPO

    auth.add_token(tmp_path / "tokens.json", "cs101", ["multiprocessing-basics"])
    (tmp_path / "lti").mkdir()
    (tmp_path / "lti" / "tool-key.pem").write_text("not a key")
    out = CliRunner().invoke(main, ["serve", "--data", str(tmp_path), "--assignment", str(REPO),
                                    "--sandbox", "local"])
    assert out.exit_code == 2 and "tool-key.pem is not an unencrypted PEM private key" in out.output, out.output
    assert "Traceback" not in out.output


def test_jobs_finishing_during_a_roster_read_wait_for_it_instead_of_reading_again(lti, platform):  # noqa: F811
    from grader.service.lti.records import Launch

    tool = lti().app.state.lti
    queued: list = []
    tool.submit = lambda url, work, course="": queued.append(work)
    context = Launch(platform.issuer, platform.client_id, platform.deployment_id, platform.context_id, "x",
                     "cs101", "tiny", "link-1", None, None, (), f"{platform.issuer}/nrps/{platform.context_id}")
    registration = tool.registry.find(platform.issuer, platform.client_id)
    ran: list[int] = []
    for n in range(3):
        assert tool.refresh_roster(registration, context, then=lambda n=n: ran.append(n), older_than=0) is True
    assert len(queued) == 1 and ran == []
    queued[0]()  # the one read, against the platform
    assert ran == [0, 1, 2] and platform.requests.count(("GET", f"/nrps/{platform.context_id}")) == 2
    assert tool.refresh_roster(registration, context, then=None) is False  # just read: not again
