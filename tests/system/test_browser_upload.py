"""The upload page in headless Chromium against a real gunicorn: network drops, a server crash, resume."""

import socket
import time
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Route

from tests.support.browser import add_folder, chromium, log_in_and_create_batch
from tests.support.factories import PASSWORD
from tests.support.liveserver import LiveServer
from tests.support.photogen import SMALL_SIZE, make_photo

pytestmark = pytest.mark.slow

FILES_ROUTE = "**/api/batches/*/files"
# Runs before the page's scripts: the page must then fingerprint files without WebCrypto, as on plain HTTP.
WITHOUT_WEBCRYPTO = "Object.defineProperty(Crypto.prototype, 'subtle', { get: () => undefined })"


@pytest.fixture
def server(database_url, data_dir):
    server = LiveServer(data_dir, database_url, INTAKE_PROCESSOR="0")
    result = server.flask("create-user", "staff", "--role", "staff", "--password-stdin", input_text=PASSWORD + "\n")
    assert result.returncode == 0, result.stderr
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


@pytest.fixture
def context(browser: Browser):
    context = browser.new_context()
    context.set_default_timeout(30_000)
    yield context
    context.close()


def folder_of_photos(root: Path, count: int, first: int = 1) -> Path:
    folder = root / "EOS_DIGITAL"
    (folder / "DCIM" / "100CANON").mkdir(parents=True)
    for i in range(first, first + count):
        make_photo(folder / "DCIM" / "100CANON" / f"IMG_{i:04d}.JPG", size=SMALL_SIZE, seed=i)
    (folder / ".DS_Store").write_bytes(b"clutter the page leaves out")
    return folder


def new_page(context, server: LiveServer) -> Page:
    page = context.new_page()
    # Leaving with uploads unfinished asks "leave this page?": a closed tab is what these tests mean.
    page.on("dialog", lambda dialog: dialog.accept())
    return page


def wait_for_summary(page: Page, condition: str, timeout: float = 60_000) -> dict:
    """Wait until `condition` (JS over the summary's counters, e.g. "s.done == 20") holds; return them."""
    page.wait_for_function(
        f"() => {{ const s = document.getElementById('upload-summary').dataset; return {condition} }}", timeout=timeout
    )
    counters = page.eval_on_selector("#upload-summary", "el => ({...el.dataset})")
    return {key: int(value) for key, value in counters.items()}


class Gate:
    """Intercepts file uploads: lets the first `open_for` through, then holds or drops them on command."""

    def __init__(self, open_for: int):
        self.open_for = open_for
        self.mode = "count"
        self.held: list[Route] = []

    def __call__(self, route: Route) -> None:
        if self.mode == "drop":
            route.abort("internetdisconnected")
        elif self.mode == "count" and self.open_for == 0:
            self.held.append(route)
        else:
            self.open_for -= 1
            route.continue_()

    def set(self, mode: str) -> None:
        """ "drop" fails everything as a lost network does; "pass" lets everything through."""
        self.mode = mode
        held, self.held = self.held, []
        for route in held:
            route.abort("internetdisconnected") if mode == "drop" else route.continue_()


def assert_each_photo_once(server: LiveServer, batch_id: int, folder: Path, status: str) -> None:
    report = server.report(batch_id)
    names = [entry["filename"] for entry in report["photos"]]
    expected = sorted(f"{folder.name}/{path.relative_to(folder).as_posix()}" for path in folder.rglob("*.JPG"))
    assert sorted(names) == expected
    assert report["status"] == status
    assert all(entry["role"] != "rejected" for entry in report["photos"])


def test_uploads_resume_by_themselves_when_the_network_comes_back(server, context, tmp_path):
    """The network drops after 4 files: the rest wait and go out when the browser is back online; adding
    the folder again (fingerprinted without WebCrypto) then sends nothing. A raw file is listed, not sent."""
    folder = folder_of_photos(tmp_path, 12)
    (folder / "DCIM" / "100CANON" / "IMG_0001.CR3").write_bytes(b"raw sensor data")
    page = new_page(context, server)
    batch_id = log_in_and_create_batch(page, server.url)
    page.check("#upload-hold")  # these tests complete the batch themselves
    gate = Gate(open_for=4)
    page.route(FILES_ROUTE, gate)
    add_folder(page, folder)
    wait_for_summary(page, "s.sent == 4")
    context.set_offline(True)
    gate.set("drop")
    waiting = wait_for_summary(
        page,
        "s.waiting > 0 && document.getElementById('upload-summary').textContent.includes('Upload interrupted')",
        timeout=30_000,
    )
    assert waiting["done"] == 4
    gate.set("pass")
    context.set_offline(False)
    done = wait_for_summary(page, "s.done == 12", timeout=60_000)
    assert (done["total"], done["sent"], done["alreadyThere"], done["refused"]) == (12, 12, 0, 1)
    assert page.text_content("#upload-refused") == "EOS_DIGITAL/DCIM/100CANON/IMG_0001.CR3: not a photo or a .zip"
    assert_each_photo_once(server, batch_id, folder, "uploading")

    again = new_page(context, server)
    again.add_init_script(WITHOUT_WEBCRYPTO)
    puts = []
    again.on("request", lambda request: puts.append(request.url) if request.method == "PUT" else None)
    again.goto(page.url)
    again.check("#upload-hold")
    add_folder(again, folder)
    counters = wait_for_summary(again, "s.done == 12 && s.alreadyThere == 12")
    assert (counters["sent"], puts) == (0, [])


def test_after_a_server_crash_adding_the_folder_again_sends_only_the_missing_files(server, context, tmp_path):
    """gunicorn is killed (-9) with 8 of 20 files in; after a restart and a fresh page the same folder
    sends exactly the 12 others, and completing queues a batch that holds every photo once."""
    folder = folder_of_photos(tmp_path, 20)
    page = new_page(context, server)
    batch_id = log_in_and_create_batch(page, server.url)
    page.check("#upload-hold")  # these tests complete the batch themselves
    upload_url = page.url
    gate = Gate(open_for=8)
    page.route(FILES_ROUTE, gate)
    add_folder(page, folder)
    wait_for_summary(page, "s.sent == 8")
    server.kill()
    gate.set("pass")
    wait_for_summary(page, "s.waiting > 0", timeout=30_000)
    page.close()

    server.start()
    page = new_page(context, server)
    responses = []
    page.on("response", lambda r: responses.append(r.status) if r.request.method == "PUT" else None)
    page.goto(upload_url)
    page.check("#upload-hold")
    assert page.inner_text("#batch-stored") == "8"
    add_folder(page, folder)
    counters = wait_for_summary(page, "s.done == 20")
    assert (counters["alreadyThere"], counters["sent"], counters["refused"]) == (8, 12, 0)
    assert responses == [201] * 12
    page.click("#upload-complete")
    page.wait_for_selector("#upload-reopen")
    assert (page.inner_text("#batch-status"), page.inner_text("#batch-stored")) == ("queued", "20")
    assert_each_photo_once(server, batch_id, folder, "queued")
    originals = [p for p in (server.data_dir / "originals").rglob("*") if p.is_file()]
    assert len(originals) == 20


def read_response(sock: socket.socket) -> bytes:
    """One HTTP response with a Content-Length, without waiting for the connection to close."""
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(65536) or pytest.fail(f"connection closed early: {answer!r}")
    head = answer.split(b"\r\n\r\n")[0].decode()
    length = int(next(line.split(":")[1] for line in head.split("\r\n") if line.lower().startswith("content-length")))
    while len(answer) < len(head) + 4 + length:
        answer += sock.recv(65536) or pytest.fail(f"connection closed early: {answer!r}")
    return answer


def test_real_server_refuses_two_gigabytes_from_the_header(server, context):
    """A 2 GB PUT is answered 413 at once; gunicorn closes the connection instead of reading the body."""
    page = new_page(context, server)
    batch_id = log_in_and_create_batch(page, server.url)
    page.check("#upload-hold")  # these tests complete the batch themselves
    token = page.get_attribute("#upload-page", "data-csrf")
    cookie = "; ".join(f"{c['name']}={c['value']}" for c in context.cookies())
    request = (
        f"PUT /api/batches/{batch_id}/files HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        f"Cookie: {cookie}\r\nX-CSRFToken: {token}\r\nX-File-Name: huge.jpg\r\n"
        "Content-Type: application/octet-stream\r\nContent-Length: 2147483648\r\n\r\n"
    ).encode()
    before = sum(p.stat().st_size for p in server.data_dir.rglob("*") if p.is_file())
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request + b"\0" * 16 * 1024)
        answer = read_response(sock)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"larger than the limit of 200 MB" in answer
    assert time.monotonic() - started < 5
    after = sum(p.stat().st_size for p in server.data_dir.rglob("*") if p.is_file())
    assert after - before < 1024 * 1024


def test_a_closed_batch_stops_the_upload_with_the_reason(server, context, tmp_path):
    """Files for a batch that was completed meanwhile are refused (409) once each: the page says why and
    does not keep resending them."""
    page = new_page(context, server)
    log_in_and_create_batch(page, server.url)
    page.check("#upload-hold")  # these tests complete the batch themselves
    add_folder(page, folder_of_photos(tmp_path / "first", 1))
    wait_for_summary(page, "s.done == 1")
    status = page.evaluate("""async () => {
        const config = document.getElementById('upload-page').dataset
        const response = await fetch(config.completeUrl, {method: 'POST', headers: {'X-CSRFToken': config.csrf}})
        return response.status }""")
    assert status == 200
    puts = []
    page.on("response", lambda r: puts.append(r.status) if r.request.method == "PUT" else None)
    page.click(".uppy-DashboardContent-addMore")
    add_folder(page, folder_of_photos(tmp_path / "second", 3, first=2))
    page.wait_for_selector("#upload-problem:not([hidden])")
    assert "reopen it to add files" in page.inner_text("#upload-problem")
    deadline = time.monotonic() + 20
    while len(puts) < 3 and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    page.wait_for_timeout(3000)  # longer than the first automatic retry would wait
    assert puts == [409] * 3
    assert "Upload interrupted" not in page.inner_text("#upload-summary")


def test_processing_starts_by_itself_when_every_file_is_in(server, context, tmp_path):
    """Without "more cards are coming", the batch is queued as soon as the last file is in, and the page says so."""
    folder = folder_of_photos(tmp_path, 3)
    page = new_page(context, server)
    batch_id = log_in_and_create_batch(page, server.url)
    (folder / "DCIM" / "100CANON" / "notes.jpg").write_bytes(b"%PDF-1.4 not a photo")
    add_folder(page, folder)
    page.wait_for_selector("#upload-reopen")
    assert (page.inner_text("#batch-status"), page.inner_text("#batch-stored")) == ("queued", "3")
    assert page.inner_text("#batch-rejected") == "1"
    assert server.report(batch_id)["status"] == "queued"
