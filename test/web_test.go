package test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/medicus-health/medicus/client"
	"github.com/medicus-health/medicus/client/content"
)

// chromiumPath finds a Chromium for the browser tests: $MEDICUS_CHROMIUM,
// else the first of the usual names on $PATH.
func chromiumPath() (string, []string) {
	names := []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}
	if p := os.Getenv("MEDICUS_CHROMIUM"); p != "" {
		return p, nil
	}
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p, names
		}
	}
	return "", names
}

// serverSPKI returns the base64 SHA-256 of the homeserver's TLS key
// (verified against its CA), which the browser is told to trust: the test
// keeps real TLS without installing the test CA in the browser.
func serverSPKI(t *testing.T, hs *homeserver) string {
	t.Helper()
	conn, err := tls.Dial("tcp", hs.addr, &tls.Config{RootCAs: hs.roots})
	if err != nil {
		t.Fatalf("TLS to the homeserver: %v", err)
	}
	defer conn.Close()
	sum := sha256.Sum256(conn.ConnectionState().PeerCertificates[0].RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// TestWebClientExchangesTextWithGoClient runs the homeserver binary, which
// serves the web app, logs a user in through a real headless Chromium, and
// has them exchange text with a Go client user in one room; the server's
// files hold no plaintext of either message.
func TestWebClientExchangesTextWithGoClient(t *testing.T) {
	chromium, tried := chromiumPath()
	if chromium == "" {
		t.Skipf("no Chromium found (looked for $MEDICUS_CHROMIUM and %v on $PATH); install it with: apt-get install -y chromium", tried)
	}
	hs := newHomeserver(t, "uk-freiburg.example", nil)
	doctor := hs.addUser("dr.braun", "doctor")
	nurse := hs.addUser("pflege.mai", "nurse")
	hs.start()
	goUser := newDevice(t, hs, nurse)

	opts := append(slices.Clone(chromedp.DefaultExecAllocatorOptions[:]),
		chromedp.ExecPath(chromium),
		chromedp.Flag("ignore-certificate-errors-spki-list", serverSPKI(t, hs)),
		chromedp.Flag("lang", "en-US"),
	)
	if os.Getuid() == 0 {
		opts = append(opts, chromedp.NoSandbox)
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(allocCtx, chromedp.WithLogf(t.Logf))
	defer cancelBrowser()
	// The first action starts the browser, on a context without a deadline
	// (a deadline there would stop the browser); later ones are bounded.
	if err := chromedp.Do(browser); err != nil {
		t.Fatalf("start Chromium %s: %v", chromium, err)
	}
	ctx, cancel := context.WithTimeout(browser, 4*time.Minute)
	defer cancel()

	// waitJS polls a JavaScript condition in the page until it holds.
	waitJS := func(what, cond string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](cond, chromedp.WithPollingTimeout(2*time.Minute))); err != nil {
			statusLine, _ := chromedp.Run(ctx, chromedp.Text(chromedp.ID("status")))
			t.Fatalf("browser: %s: %v (status line: %q)", what, err, statusLine)
		}
	}

	toGo := fmt.Sprintf("Laktat 4,1 mmol/L bei Bett 12, bitte Blutkulturen (%d)", time.Now().UnixNano())
	toBrowser := fmt.Sprintf("Blutkulturen abgenommen, Antibiose läuft (%d)", time.Now().UnixNano())

	url := "https://" + hs.addr + "/"
	if err := chromedp.Do(ctx,
		chromedp.Navigate(url),
		chromedp.WaitVisible(chromedp.ID("login-form")),
		chromedp.SendKeys(chromedp.ID("user"), doctor),
		chromedp.SendKeys(chromedp.ID("password"), testPassword),
		chromedp.SendKeys(chromedp.ID("passphrase"), "browser state passphrase"),
		chromedp.Click(chromedp.CSS(`#login-form button[type="submit"]`)),
	); err != nil {
		t.Fatalf("browser login form: %v", err)
	}
	waitJS("logged in", `!document.getElementById("app-view").hidden`)

	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("room-name"), "Sepsis Bett 12"),
		chromedp.Click(chromedp.CSS(`#create-form button[type="submit"]`)),
	); err != nil {
		t.Fatal(err)
	}
	waitJS("room created", `!document.getElementById("room-view").hidden`)
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("invitee"), nurse),
		chromedp.Click(chromedp.CSS(`#invite-form button[type="submit"]`)),
	); err != nil {
		t.Fatal(err)
	}
	waitJS("nurse invited", fmt.Sprintf(`document.getElementById("status").textContent.includes(%q)`, nurse))
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("message"), toGo),
		chromedp.Click(chromedp.CSS(`#send-form button[type="submit"]`)),
	); err != nil {
		t.Fatal(err)
	}
	waitJS("own message in the timeline", fmt.Sprintf(`document.getElementById("timeline").textContent.includes(%q)`, toGo))

	// The Go client joins the browser's room and reads the message.
	var room string
	deadline := time.Now().Add(2 * time.Minute)
	for room == "" {
		for _, m := range goUser.sync() {
			if m.Type != client.TypeContent {
				continue
			}
			c, err := m.Decode()
			if err != nil {
				t.Fatalf("decode the browser's message: %v", err)
			}
			if text, ok := c.Body.(*content.Text); ok && text.Markdown == toGo {
				room = m.Room
			}
		}
		if room == "" && time.Now().After(deadline) {
			t.Fatalf("the Go client did not receive the browser's message; rooms: %+v", goUser.Rooms())
		}
	}
	if _, err := goUser.SendText(ctxT(t), room, toBrowser); err != nil {
		t.Fatalf("Go client reply: %v", err)
	}
	waitJS("reply from the Go client in the timeline", fmt.Sprintf(`document.getElementById("timeline").textContent.includes(%q)`, toBrowser))

	hs.assertNoPlaintext([]byte(toGo))
	hs.assertNoPlaintext([]byte(toBrowser))

	// The browser's IndexedDB holds only sealed bytes.
	stored, err := chromedp.Run(ctx, chromedp.Evaluate[string](readIndexedDB, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("read IndexedDB: %v", err)
	}
	if len(stored) < 1000 {
		t.Fatalf("IndexedDB holds only %d bytes; expected the sealed state", len(stored))
	}
	for _, plain := range []string{toGo, toBrowser, "Sepsis Bett 12", doctor, nurse, "Laktat"} {
		if strings.Contains(stored, plain) {
			t.Errorf("IndexedDB holds %q in the clear", plain)
		}
	}

	// A reload keeps the session: unlock with the passphrase, and the room
	// and its timeline are back from IndexedDB.
	if err := chromedp.Do(ctx,
		chromedp.Reload(),
		chromedp.WaitVisible(chromedp.ID("unlock-form")),
		chromedp.SendKeys(chromedp.ID("unlock-passphrase"), "browser state passphrase"),
		chromedp.Click(chromedp.CSS(`#unlock-form button[type="submit"]`)),
	); err != nil {
		t.Fatalf("reload and unlock: %v", err)
	}
	waitJS("room list after reload", `document.getElementById("rooms").textContent.includes("Sepsis Bett 12")`)
	timing, err := chromedp.Run(ctx, chromedp.Evaluate[[]float64](`["medicus-ready", "medicus-unlock", "medicus-rooms"].map((n) => performance.getEntriesByName(n).at(-1).startTime)`))
	if err != nil || len(timing) != 3 {
		t.Fatalf("performance marks: %v, %v", timing, err)
	}
	t.Logf("after reload: wasm client ready in %.0f ms; unlock (scrypt) to rendered room list in %.0f ms", timing[0], timing[2]-timing[1])
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`#rooms button`))); err != nil {
		t.Fatal(err)
	}
	waitJS("timeline after reload", fmt.Sprintf(`document.getElementById("timeline").textContent.includes(%q) && document.getElementById("timeline").textContent.includes(%q)`, toGo, toBrowser))

	// Logging out deletes the browser's keys: a reload asks to log in again.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("logout"))); err != nil {
		t.Fatal(err)
	}
	waitJS("login form after logout", `!document.getElementById("login-view").hidden`)
	if err := chromedp.Do(ctx, chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	waitJS("login form after logout and reload", `!document.getElementById("login-view").hidden`)
}

// readIndexedDB returns every value of the web client's IndexedDB (its
// bytes as Latin-1 text), as an attacker copying the browser profile sees it.
const readIndexedDB = `new Promise((resolve, reject) => {
  const req = indexedDB.open("medicus/state.db");
  req.onerror = () => reject(req.error);
  req.onsuccess = () => {
    const db = req.result, names = ["meta", "kv", "messages"], parts = [];
    const tx = db.transaction(names);
    let pending = names.length;
    for (const name of names) {
      const all = tx.objectStore(name).getAll();
      all.onerror = () => reject(all.error);
      all.onsuccess = () => {
        for (const v of all.result) parts.push(new TextDecoder("latin1").decode(v instanceof Uint8Array ? v : v.v));
        if (--pending === 0) { db.close(); resolve(parts.join("\n")); }
      };
    }
  };
})`
