package licensing

import (
	"strings"
	"testing"
)

func TestEmailsEscapeDeviceInputInHTML(t *testing.T) {
	tpl := parseEmailTemplates()
	data := deviceEmailData{Vendor: "Acme", LicenseID: "lic_1", DeviceName: `<script>alert(1)</script>`, Platform: "win",
		Fingerprint: `fp"><img src=x>`, Time: "2026-11-29T12:00:00Z", ExpiresAt: "2026-11-29T12:15:00Z",
		ConfirmURL: "http://h/claims/confirm?token=abc_-"}
	m, err := tpl.claim.render("claim-clm_1", "o@example.com", data)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(m.HTML, "<script>") || strings.Contains(m.HTML, "<img") || !strings.Contains(m.HTML, "&lt;script&gt;") {
		t.Fatalf("HTML not escaped: %s", m.HTML)
	}
	if !strings.Contains(m.Text, "<script>alert(1)</script>") || !strings.Contains(m.HTML, `href="http://h/claims/confirm?token=abc_-"`) {
		t.Fatalf("text %q html %q", m.Text, m.HTML)
	}
	if m.ID != "claim-clm_1" || m.To != "o@example.com" || m.Subject != "Acme: approve a new device for your license?" {
		t.Fatalf("%+v", m)
	}
	s, err := tpl.supersede.render("supersede-act_1", "o@example.com", data)
	if err != nil || strings.Contains(s.HTML, "<script>") || s.Template != "device_superseded" {
		t.Fatalf("%+v %v", s, err)
	}
}
