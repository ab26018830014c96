package server

import (
	"testing"

	"github.com/medicus-health/medicus/proto"
)

func TestKeyPackagesAreTaggedAndClaimedBySuite(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxKeyPackagesPerDevice = 3 })
	doc, nurse := e.login("doc"), e.login("nurse")
	const hybrid = 0xF001

	var count proto.KeyPackageCount
	// No suite: the default suite, as clients before per-room suites send.
	e.must("POST", "/v1/keys/upload", nurse.AccessToken, proto.UploadKeyPackagesRequest{KeyPackages: [][]byte{[]byte("c-1"), []byte("c-2")}, LastResort: []byte("c-last")}, &count)
	if count.Unclaimed != 2 || !count.HasLastResort || count.Suite != proto.DefaultSuite {
		t.Fatalf("count after default upload: %+v", count)
	}
	e.must("POST", "/v1/keys/upload", nurse.AccessToken, proto.UploadKeyPackagesRequest{Suite: hybrid, KeyPackages: [][]byte{[]byte("pq-1")}, LastResort: []byte("pq-last")}, &count)
	if count.Unclaimed != 1 || !count.HasLastResort || count.Suite != hybrid {
		t.Fatalf("count after hybrid upload: %+v", count)
	}
	// A last resort of one suite does not replace the other's.
	for _, tc := range []struct {
		query string
		want  int
	}{{"", 2}, {"?suite=1", 2}, {"?suite=0xf001", 1}, {"?suite=61441", 1}, {"?suite=3", 0}} {
		var c proto.KeyPackageCount
		e.must("GET", "/v1/keys/count"+tc.query, nurse.AccessToken, nil, &c)
		if c.Unclaimed != tc.want || c.HasLastResort != (tc.want > 0) {
			t.Errorf("count%s = %+v, want %d unclaimed", tc.query, c, tc.want)
		}
	}
	if status, code := e.call("GET", "/v1/keys/count?suite=70000", nurse.AccessToken, nil, nil); status != 400 || code != proto.ErrInvalidParam {
		t.Errorf("count with an out-of-range suite: %d %s, want 400 M_INVALID_PARAM", status, code)
	}

	claim := func(suite uint16) (proto.ClaimedKeyPackage, int, string) {
		t.Helper()
		var cr proto.ClaimKeyPackagesResponse
		status, code := e.call("POST", "/v1/keys/claim", doc.AccessToken, proto.ClaimKeyPackagesRequest{UserID: nurse.UserID, Suite: suite}, &cr)
		if status != 200 {
			return proto.ClaimedKeyPackage{}, status, code
		}
		if len(cr.KeyPackages) != 1 {
			t.Fatalf("claim in suite %#04x: %d packages, want 1", suite, len(cr.KeyPackages))
		}
		return cr.KeyPackages[0], status, code
	}
	if kp, _, _ := claim(hybrid); string(kp.KeyPackage) != "pq-1" || kp.LastResort {
		t.Errorf("first hybrid claim: %q last_resort=%v, want pq-1", kp.KeyPackage, kp.LastResort)
	}
	if kp, _, _ := claim(hybrid); string(kp.KeyPackage) != "pq-last" || !kp.LastResort {
		t.Errorf("second hybrid claim: %q last_resort=%v, want the hybrid last resort", kp.KeyPackage, kp.LastResort)
	}
	// The hybrid claims left the default suite's packages alone.
	got := map[string]bool{}
	for _, s := range []uint16{0, proto.DefaultSuite} {
		kp, status, code := claim(s)
		if status != 200 || kp.LastResort {
			t.Fatalf("default claim (suite %d): %d %s last_resort=%v", s, status, code, kp.LastResort)
		}
		got[string(kp.KeyPackage)] = true
	}
	if !got["c-1"] || !got["c-2"] {
		t.Errorf("default claims handed out %v, want c-1 and c-2", got)
	}
	if kp, _, _ := claim(0); string(kp.KeyPackage) != "c-last" || !kp.LastResort {
		t.Errorf("default claim after exhaustion: %q, want c-last", kp.KeyPackage)
	}
	// A suite the device published nothing in: no key package.
	if _, status, code := claim(3); status != 404 || code != proto.ErrNoKeyPackage {
		t.Errorf("claim in an unpublished suite: %d %s, want 404 M_NO_KEY_PACKAGE", status, code)
	}

	// The per-device limit holds per suite.
	e.must("POST", "/v1/keys/upload", nurse.AccessToken, proto.UploadKeyPackagesRequest{KeyPackages: [][]byte{[]byte("a"), []byte("b"), []byte("c")}}, nil)
	e.must("POST", "/v1/keys/upload", nurse.AccessToken, proto.UploadKeyPackagesRequest{Suite: hybrid, KeyPackages: [][]byte{[]byte("x"), []byte("y"), []byte("z")}}, nil)
	if status, code := e.call("POST", "/v1/keys/upload", nurse.AccessToken, proto.UploadKeyPackagesRequest{Suite: hybrid, KeyPackages: [][]byte{[]byte("w")}}, nil); status != 403 || code != proto.ErrLimitExceeded {
		t.Errorf("upload over the per-suite limit: %d %s, want 403 M_LIMIT_EXCEEDED", status, code)
	}
}
