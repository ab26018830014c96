package test

import (
	"bytes"
	"database/sql"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/medicus-health/medicus/proto"
)

// TestAuditLogRecordsAccessButNoContent checks that logins, failed logins,
// joins, media downloads and administrator actions are in the audit log
// with actor and device, and that the log holds no message content.
func TestAuditLogRecordsAccessButNoContent(t *testing.T) {
	hs := newHomeserver(t, "uk-freiburg.example", nil)
	alice, bob := hs.addUser("alice", "doctor"), hs.addUser("bob", "nurse")
	hs.start()
	ca, cb := hs.login(alice), hs.login(bob)
	if _, err := hs.client().Login(ctxT(t), bob, "wrong-password", ""); err == nil {
		t.Fatal("wrong password accepted")
	}
	room := setupRoom(t, ca, cb)
	ctx := ctxT(t)
	seal := newSealer(t)
	if _, err := ca.Send(ctx, room, "1", proto.KindMLSApp, seal.seal([]byte("AUDIT-MARKER"))); err != nil {
		t.Fatal(err)
	}
	up, err := ca.UploadMedia(ctx, room, bytes.NewReader(seal.seal([]byte("AUDIT-MARKER image"))), -1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cb.DownloadMedia(ctx, up.MediaID, -1, -1); err != nil {
		t.Fatal(err)
	}
	medicus(t, "", "admin", "user", "disable", "--dir", hs.dir, "bob")
	hs.stop(syscall.SIGTERM)

	db, err := sql.Open("sqlite", "file:"+filepath.Join(hs.dir, "medicus.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT actor, device_id, action, target FROM audit_log ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	seen := map[string]bool{}
	for rows.Next() {
		var actor, device, action, target string
		if err := rows.Scan(&actor, &device, &action, &target); err != nil {
			t.Fatal(err)
		}
		key := action + " " + actor
		seen[key] = true
		if strings.Contains(actor+device+action+target, "AUDIT-MARKER") {
			t.Fatalf("audit row carries content: %s %s %s %s", actor, device, action, target)
		}
		if action == "media_download" && (device != cb.Device || !strings.Contains(target, up.MediaID)) {
			t.Errorf("media download row: device %q target %q", device, target)
		}
	}
	for _, want := range []string{
		"admin_user_add operator", "login " + alice, "login " + bob, "login_failed " + bob,
		"room_create " + alice, "room_invite " + alice, "room_join " + bob,
		"media_upload " + alice, "media_download " + bob, "admin_user_disable operator",
	} {
		if !seen[want] {
			t.Errorf("audit log lacks %q", want)
		}
	}
}
