package bot

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const sampleConfig = `
homeserver = "https://uk-freiburg.example:8448"
ca_file = "ca.pem"
user = "@sepsis-bot:uk-freiburg.example"
password_file = "bot.password"
profile_dir = "profile"
state_key_file = "profile.key"
data_dir = "data"
icu_room = "!icu3aaaaaaaaaaaaaaaa:uk-freiburg.example"
escalation_room = "!oncallaaaaaaaaaaaaa:uk-freiburg.example"
escalate_after = "30m"
summary_time = "07:30"
time_zone = "Europe/Berlin"
threshold = 0.05
fhir_listen = "127.0.0.1:8443"
fhir_cert_file = "fhir.crt"
fhir_key_file = "fhir.key"
fhir_token_file = "fhir.token"
mllp_listen = "127.0.0.1:2575"
`

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sepsisbot.toml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadConfigResolvesPathsAndDurations(t *testing.T) {
	path := writeConfig(t, sampleConfig)
	c, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(path)
	if c.CAFile != filepath.Join(dir, "ca.pem") || c.DataDir != filepath.Join(dir, "data") || c.EscalateAfter != 30*time.Minute {
		t.Fatalf("config %+v", c)
	}
	if off, _ := c.summaryOffset(); off != 7*time.Hour+30*time.Minute {
		t.Fatalf("summary offset %v", off)
	}
}

func TestLoadConfigRefusesMistakes(t *testing.T) {
	tests := []struct {
		name  string
		edits [][2]string
		want  string
	}{
		{"unknown key", [][2]string{{`threshold = 0.05`, `treshold = 0.05`}}, "unknown keys"},
		{"no room", [][2]string{{`icu_room = "!icu3aaaaaaaaaaaaaaaa:uk-freiburg.example"`, ``}}, "icu_room is required"},
		{"escalation without room", [][2]string{{`escalation_room = "!oncallaaaaaaaaaaaaa:uk-freiburg.example"`, ``}}, "escalation_room"},
		{"bad summary time", [][2]string{{`"07:30"`, `"7.30 am"`}}, "summary_time"},
		{"bad zone", [][2]string{{`"Europe/Berlin"`, `"Europe/Atlantis"`}}, "time_zone"},
		{"threshold above 1", [][2]string{{`threshold = 0.05`, `threshold = 5`}}, "threshold"},
		{"FHIR without token", [][2]string{{`fhir_token_file = "fhir.token"`, ``}}, "fhir_token_file"},
		{"no input", [][2]string{{`fhir_listen = "127.0.0.1:8443"`, ``}, {`mllp_listen = "127.0.0.1:2575"`, ``}}, "no input"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text := sampleConfig
			for _, e := range tt.edits {
				if !strings.Contains(text, e[0]) {
					t.Fatalf("%q not in the sample", e[0])
				}
				text = strings.Replace(text, e[0], e[1], 1)
			}
			_, err := LoadConfig(writeConfig(t, text))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestExampleConfigLoads(t *testing.T) {
	c, err := LoadConfig(writeConfig(t, ExampleConfig))
	if err != nil {
		t.Fatal(err)
	}
	if c.EscalateAfter != 30*time.Minute || c.FHIRListen != "0.0.0.0:8443" || c.TimeZone != "Europe/Berlin" || !filepath.IsAbs(c.FHIRTokenFile) {
		t.Fatalf("example config %+v", c)
	}
}
