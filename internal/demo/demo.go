// Package demo scripts the clinical scenarios that `medicus demo` plays
// against real homeservers with real clients, printing what each person
// sees: a second-opinion room with text, a FHIR lab result and an image.
package demo

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/medicus-health/medicus/client"
	"github.com/medicus-health/medicus/client/content"
	"github.com/medicus-health/medicus/client/state"
)

// Account is a user the scenario logs in as.
type Account struct {
	UserID, Password string
	// ServerURL and CA locate and authenticate the user's homeserver.
	ServerURL string
	CA        []byte
}

// Scenario runs scripted clients; their profiles live under Dir.
type Scenario struct {
	Dir string
	Out io.Writer
}

type person struct {
	name string
	*client.Session
}

func (sc *Scenario) login(ctx context.Context, name string, a Account) (*person, error) {
	// Each login is a new device with its own profile.
	if err := os.MkdirAll(sc.Dir, 0o700); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(sc.Dir, strings.NewReplacer("@", "", ":", "_").Replace(a.UserID)+"-")
	if err != nil {
		return nil, err
	}
	keyFile := filepath.Join(dir, "state.key")
	if err := state.GenerateKeyFile(keyFile); err != nil {
		return nil, err
	}
	cfg := client.Config{ProfileDir: filepath.Join(dir, "profile"), Lock: state.Lock{KeyFile: keyFile}}
	s, err := client.Login(ctx, cfg, a.ServerURL, a.CA, a.UserID, a.Password, &client.LoginOptions{DeviceName: "demo " + name})
	if err != nil {
		return nil, fmt.Errorf("%s logs in: %w", name, err)
	}
	fmt.Fprintf(sc.Out, "  %-22s logged in as %s (device %s)\n", name, s.UserID(), s.DeviceID())
	return &person{name: name, Session: s}, nil
}

// await syncs p until it has seen want more messages worth showing (over
// federation they arrive asynchronously), printing each as p sees it.
func (sc *Scenario) await(ctx context.Context, p *person, want int) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	seen := 0
	for {
		msgs, err := p.Sync(ctx)
		if err != nil {
			return fmt.Errorf("%s syncs: %w", p.name, err)
		}
		for _, m := range msgs {
			if line := Describe(m); line != "" {
				fmt.Fprintf(sc.Out, "  %-22s sees  %s\n", p.name, line)
				seen++
			}
		}
		if seen >= want {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s saw %d of %d messages: %w", p.name, seen, want, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Describe renders a message in one line as a person would see it.
func Describe(m client.Message) string {
	switch m.Type {
	case client.TypeContent:
		c, err := m.Decode()
		if err != nil {
			return fmt.Sprintf("#%d from %s: unreadable (%v)", m.Seq, m.Sender, err)
		}
		return fmt.Sprintf("#%d %s: %s", m.Seq, m.Sender, Summarize(c))
	case client.TypeJoined, client.TypeRemoved, client.TypeRefused:
		return fmt.Sprintf("[%s] %s", m.Type, m.Notice)
	}
	return ""
}

// Summarize renders a content message's body in one line.
func Summarize(c *content.Message) string {
	switch b := c.Body.(type) {
	case *content.Text:
		return b.Markdown
	case *content.Reply:
		return "↪ " + b.Markdown
	case *content.Attachment:
		s := fmt.Sprintf("📎 %s (%s, %d bytes", b.Name, b.MediaType, b.Size)
		if b.Width > 0 {
			s += fmt.Sprintf(", %d×%d", b.Width, b.Height)
		}
		if b.Thumbnail != nil {
			s += fmt.Sprintf(", thumbnail %d×%d", b.Thumbnail.Width, b.Thumbnail.Height)
		}
		return s + ")"
	case *content.FHIR:
		if r := b.Parsed(); r != nil && r.Observation != nil {
			o := r.Observation
			s := "🧪 FHIR Observation"
			if o.Code.Text != nil {
				s += " " + *o.Code.Text
			}
			if q := o.ValueQuantity; q != nil && q.Value != nil && q.Unit != nil {
				s += fmt.Sprintf(" = %s %s", q.Value.String(), *q.Unit)
			}
			return s
		}
		return "FHIR resource"
	case *content.Alert:
		return fmt.Sprintf("🚨 sepsis alert %s: risk %.0f%%", b.Bed, 100*b.Risk)
	}
	return "[" + string(c.Body.Type()) + "]"
}

// lactate is the FHIR R4 Observation the demo shares.
const lactate = `{"resourceType":"Observation","status":"final",
"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory"}]}],
"code":{"coding":[{"system":"http://loinc.org","code":"2524-7","display":"Lactate [Moles/volume] in Serum or Plasma"}],"text":"Lactate"},
"subject":{"reference":"Patient/pseudo-4711"},"effectiveDateTime":"2026-11-28T22:14:00+01:00",
"valueQuantity":{"value":4.2,"unit":"mmol/L","system":"http://unitsofmeasure.org","code":"mmol/L"}}`

// SecondOpinion plays a second-opinion consultation: the requesting
// doctor opens a room, invites a colleague (possibly at another hospital)
// and the patient, and shares a note, a lab result and an image.
func (sc *Scenario) SecondOpinion(ctx context.Context, requester, colleague, patient Account) error {
	fmt.Fprintf(sc.Out, "\n== Second opinion: %s asks %s, with the patient %s ==\n", requester.UserID, colleague.UserID, patient.UserID)
	req, err := sc.login(ctx, "requesting doctor", requester)
	if err != nil {
		return err
	}
	defer req.Close()
	col, err := sc.login(ctx, "consulted colleague", colleague)
	if err != nil {
		return err
	}
	defer col.Close()
	pat, err := sc.login(ctx, "patient", patient)
	if err != nil {
		return err
	}
	defer pat.Close()

	room, err := req.CreateRoom(ctx, "Second opinion: patient 4711")
	if err != nil {
		return err
	}
	fmt.Fprintf(sc.Out, "  requesting doctor      created room %s (an MLS group; the server never learns its name)\n", room)
	for _, p := range []*person{col, pat} {
		if err := req.Invite(ctx, room, p.UserID()); err != nil {
			return err
		}
		if err := sc.await(ctx, p, 1); err != nil {
			return err
		}
	}
	question, err := req.SendText(ctx, room, "Septic shock suspected after hemicolectomy; lactate rising. Would you escalate antibiotics?")
	if err != nil {
		return err
	}
	if _, err := req.SendFHIR(ctx, room, []byte(lactate)); err != nil {
		return err
	}
	img, err := writeDemoImage(sc.Dir)
	if err != nil {
		return err
	}
	imageSent, err := req.SendFile(ctx, room, img, nil)
	if err != nil {
		return err
	}
	for _, p := range []*person{col, pat} {
		if err := sc.await(ctx, p, 3); err != nil {
			return err
		}
	}
	out := filepath.Join(sc.Dir, "downloaded-abdomen-ct.png")
	if _, err := col.Download(ctx, room, imageSent.Seq, out); err != nil {
		return err
	}
	fmt.Fprintf(sc.Out, "  consulted colleague    downloaded the image, hash verified and decrypted: %s\n", out)
	if _, err := col.SendContent(ctx, room, &content.Reply{Markdown: "Yes: meropenem, and repeat lactate in 2 h."}, question.ID); err != nil {
		return err
	}
	for _, p := range []*person{req, pat} {
		if err := sc.await(ctx, p, 1); err != nil {
			return err
		}
	}
	ident, err := req.Verify(ctx, col.UserID(), false)
	if err != nil {
		return err
	}
	fmt.Fprintf(sc.Out, "  safety number of %s and %s (compare by phone):\n    %s\n", req.UserID(), col.UserID(), ident.SafetyNumber)
	return nil
}

// writeDemoImage draws a synthetic grey-scale "CT slice" to a PNG file.
func writeDemoImage(dir string) (string, error) {
	const w, h = 512, 512
	img := image.NewGray(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			dx, dy := float64(x-w/2)/(w/2), float64(y-h/2)/(h/2)
			r := math.Hypot(dx, dy*1.3)
			v := 0.0
			if r < 0.9 {
				v = 90 + 60*math.Cos(8*r) + 30*math.Sin(5*dx)*math.Cos(7*dy)
			}
			img.SetGray(x, y, color.Gray{uint8(max(0, min(255, v)))})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "abdomen-ct.png")
	return path, os.WriteFile(path, buf.Bytes(), 0o600)
}

// Secrets are strings of the scenario that must never appear in a
// homeserver's files.
var Secrets = []string{"Septic shock suspected", "meropenem", "pseudo-4711", "Second opinion: patient 4711"}

// FindPlaintext returns the files under dir that contain one of the
// scenario's secrets.
func FindPlaintext(dir string) ([]string, error) {
	var found []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, s := range append(Secrets, ICUSecrets...) {
			if bytes.Contains(b, []byte(s)) {
				found = append(found, path+": "+s)
			}
		}
		return nil
	})
	return found, err
}
