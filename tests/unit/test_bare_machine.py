"""The bare-machine check's own bookkeeping: what it mounts for pip, and how it counts test results."""

from __future__ import annotations

from bench.bare_machine import junit_counts, local_paths


def test_a_file_index_is_mounted_with_the_files_its_pages_link_to():
    env = {"PIP_EXTRA_INDEX_URL": "file:///opt/pypi/simple https://example.org/simple",
           "PIP_FIND_LINKS": "/opt/wheels", "PIP_CONSTRAINT": "/etc/xdg/pip/constraints.txt"}
    assert local_paths(env) == ["/etc/xdg/pip/constraints.txt", "/opt/pypi", "/opt/wheels"]


def test_junit_counts_passed_and_names_what_did_not_pass(tmp_path):
    xml = tmp_path / "r.xml"
    xml.write_text(
        '<testsuites><testsuite tests="4" failures="1" errors="1" skipped="1">'
        '<testcase classname="tests.a" name="test_ok"/>'
        '<testcase classname="tests.a" name="test_bad"><failure message="assert 1 == 2">tb</failure></testcase>'
        '<testcase classname="" name="tests.b"><error message="collection failure">tb</error></testcase>'
        '<testcase classname="tests.a" name="test_skip"><skipped message="no"/></testcase>'
        '</testsuite></testsuites>')
    counts = junit_counts(xml)
    assert (counts["passed"], counts["failures"], counts["errors"], counts["skipped"]) == (1, 1, 1, 1)
    assert counts["not_passed"] == {"tests.a::test_bad": "assert 1 == 2", "tests.b": "collection failure"}
