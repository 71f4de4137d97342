"""Attacks on the service's report pages (``GET /v1/assignments/{name}/report/{page}``).

The pages show what students sent: an LMS user id and captured output are theirs. They must
arrive as text, and the page name in the URL must never reach a file the report did not write.
"""

from __future__ import annotations

import pytest

from tests.test_service import bearer, finished, serve, submit, tiny, tokens  # noqa: F401 - fixtures

INJECTION = '<script>window.__pwned=1</script>"><img src=x onerror=alert(1)>'
PRINTS = ("def add(a, b):\n"
          f"    print({INJECTION!r})\n"
          "    return a - b\n")


def test_a_script_in_a_student_id_or_output_is_text_on_the_served_pages(serve, tokens):  # noqa: F811
    client = serve()
    job = submit(client, tokens["cs202"], "tiny", {"add.py": PRINTS.encode()}, student=INJECTION).json()
    finished(client, tokens["cs202"], job["job_id"])
    headers = bearer(tokens["cs202"])
    pages = ["index.html", "items.html", "students.html"]
    listing = client.get("/v1/assignments/tiny/report/students.html", headers=headers).text
    pages += [p for p in listing.split('href="')[1:] if p.startswith("students/")
              for p in [p.split('"')[0]]]
    assert len(pages) == 4
    for page in pages:
        text = client.get(f"/v1/assignments/tiny/report/{page}", headers=headers).text
        assert "<script>window.__pwned" not in text and "<img src=x" not in text, page
    student_page = client.get(f"/v1/assignments/tiny/report/{pages[-1]}", headers=headers).text
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in student_page


@pytest.mark.parametrize("page", [
    "../../../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "students/../../results/00000.json",
    "/etc/passwd", "results/00000.json", "index.html%00.json", "students/.html", ".hidden.html",
])
def test_a_page_name_reaches_only_pages_the_report_wrote(serve, tokens, page):  # noqa: F811
    client = serve()
    job = submit(client, tokens["cs202"], "tiny", {"add.py": b"def add(a, b):\n    return a + b\n"},
                 student="s1").json()
    finished(client, tokens["cs202"], job["job_id"])
    response = client.get(f"/v1/assignments/tiny/report/{page}", headers=bearer(tokens["cs202"]))
    assert response.status_code == 404, response.text[:300]
    assert "root:" not in response.text and '"schema_version"' not in response.text
