package emailtmpl

import (
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
	"github.com/samplero/samplero/ports/portstest"
)

func newRenderer(t *testing.T) *Renderer {
	t.Helper()
	r, err := New(sampleOptions())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// The renderer knows exactly the templates of the port.
func TestEveryPortTemplateIsKnown(t *testing.T) {
	want := slices.Sorted(maps.Keys(portstest.EmailTemplateData))
	if got := Templates(); !slices.Equal(got, want) {
		t.Fatalf("templates %v, want %v", got, want)
	}
	if len(want) != 12 {
		t.Fatalf("%d templates", len(want))
	}
}

// Each template, rendered with the sample data, says what its reader needs: the subject and both
// parts carry the facts (links, keys, device, amounts), inside the layout.
func TestEveryTemplateRendersItsFacts(t *testing.T) {
	r := newRenderer(t)
	data := sampleData()
	cases := map[string]struct {
		subject string
		facts   []string // in the text and in the HTML
	}{
		ports.TemplateLicenseDelivery: {"Your licenses for order LS-000123", []string{
			"LS-000123", sampleKeySynth, sampleKeyKeys, "Space Echo", "Keys (Studio Bundle)", "up to 4 devices", "up to 3 devices",
			"29 November 2027", "Drum Pack Vol. 2", "Loop Pack (Studio Bundle)", "128.00 EUR",
			"https://licenses.acme-audio.example/orders/ord_01JD8X2K7Q/download/space-echo?token=pK3x9-aQ_7mZ",
			"https://licenses.acme-audio.example/orders/ord_01JD8X2K7Q/download/drums-2?token=pK3x9-aQ_7mZ",
			sampleOrderURL,
		}},
		ports.TemplateSignInLink: {"Sign in to Acme Audio", []string{
			"https://licenses.acme-audio.example/auth/verify?token=Zt1Xo2Qm-Ls9vRbN4dA", "29 November 2026, 14:45 UTC", "203.0.113.7",
		}},
		ports.TemplateLicenseRecovery: {"Your Acme Audio licenses", []string{
			"Space Echo", sampleKeySynth, "Keys", sampleKeyKeys, sampleAccountURL,
		}},
		ports.TemplateDeviceApproval: {"Approve a new device for Space Echo", []string{
			"Studio Mac", "macOS", "a3f1c9e2b7d4", "203.0.113.7", "29 November 2026, 14:30 UTC", "29 November 2026, 14:45 UTC",
			"https://licenses.acme-audio.example/claims/confirm?token=Hq7vW2xP9kLm",
		}},
		ports.TemplateDeviceActivated: {"New device activated for Space Echo", []string{
			"Studio Mac", "macOS", "a3f1c9e2b7d4", "29 November 2026, 14:30 UTC", "2 of 4", sampleAccountURL,
		}},
		ports.TemplateDeviceRemoved: {"A device was removed from your Space Echo license", []string{
			"Old Laptop", "Windows", "a3f1c9e2b7d4", "1 of 4", sampleAccountURL,
		}},
		ports.TemplateDeviceSuperseded: {"A device was re-activated for Space Echo", []string{
			"Studio Mac", "a3f1c9e2b7d4", "reinstall", sampleAccountURL,
		}},
		ports.TemplateOrderRefunded: {"Your order LS-000123 was refunded", []string{
			"LS-000123", "refunded", "Space Echo", "Drum Pack Vol. 2", "no longer",
		}},
		ports.TemplateLicenseExpiring: {"Your Keys license expires on 29 November 2027", []string{
			"VST-M3D8R-•••••-•••••-4FN9B", "29 November 2027, 00:00 UTC", sampleAccountURL,
		}},
		ports.TemplateLicenseExpired: {"Your Keys license has expired", []string{
			"VST-M3D8R-•••••-•••••-4FN9B", "29 November 2027, 00:00 UTC", sampleAccountURL,
		}},
		ports.TemplateSupportAlert: {"[Acme Audio] Order held for review: amount mismatch: LS-000123", []string{
			"does not cover the order", "Paid: 40.00 USD", "Customer: buyer@example.com", "ord_01JD8X2K7Q",
			"POST /v1/admin/orders/ord_01JD8X2K7Q/release",
		}},
		ports.TemplateLicenseKeyReissued: {"Your new license key for Space Echo", []string{
			"VST-Q8ZL2-R7NXK-3MWD4-TB9PC", "no longer activates", sampleAccountURL,
		}},
	}
	for _, name := range Templates() {
		c, ok := cases[name]
		if !ok {
			t.Errorf("%s: no test case", name)
			continue
		}
		t.Run(name, func(t *testing.T) {
			subject, text, html, err := r.Render(name, data[name])
			if err != nil {
				t.Fatal(err)
			}
			if subject != c.subject {
				t.Errorf("subject %q, want %q", subject, c.subject)
			}
			for _, f := range c.facts {
				if !strings.Contains(text, f) {
					t.Errorf("text lacks %q:\n%s", f, text)
				}
				if !strings.Contains(html, f) {
					t.Errorf("html lacks %q:\n%s", f, html)
				}
			}
			// The layout: vendor header on the brand colour, the footer, the subject as title.
			for _, f := range []string{
				`background-color:#0f766e;color:#ffffff`, ">Acme Audio</div>", "<title>" + strings.ReplaceAll(subject, "&", "&amp;") + "</title>",
				"Beispielstraße 1", `href="mailto:support@acme-audio.example"`,
			} {
				if !strings.Contains(html, f) {
					t.Errorf("html layout lacks %q", f)
				}
			}
			if !strings.HasPrefix(text, "Acme Audio\n") || !strings.Contains(text, "\n-- \nAcme Audio\n") ||
				!strings.HasSuffix(text, "Questions? Write to support@acme-audio.example.\n") || strings.Contains(text, "\n\n\n") {
				t.Errorf("text layout:\n%s", text)
			}
			// Simple markup only: no tables, images, scripts or anything fetched on opening.
			for _, bad := range []string{"<table", "<img", "<script", "<link", "<style", "url("} {
				if strings.Contains(html, bad) {
					t.Errorf("html contains %q", bad)
				}
			}
		})
	}
}

// Whatever came from outside is escaped in the HTML part and left alone in the text part.
func TestEscaping(t *testing.T) {
	r := newRenderer(t)
	const evil = `<script>alert("x")</script> & Co`
	data := map[string]any{
		ports.TemplateLicenseDelivery: ports.LicenseDeliveryEmail{Reference: "LS-000001", OrderURL: "https://h/o",
			Licenses: []ports.EmailLicense{{Product: evil, Key: "VST-AAAAA", MaxActivations: 1}}, SamplePacks: []string{evil},
			Downloads: []ports.EmailDownload{{Product: evil, Kind: "plugin", URL: "https://h/d"}}},
		ports.TemplateDeviceApproval: ports.DeviceApprovalEmail{Product: evil, DeviceName: evil, Fingerprint: evil, RequestAddr: evil,
			ConfirmURL: "https://h/c"},
		ports.TemplateDeviceActivated:    ports.DeviceEmail{Product: evil, DeviceName: evil, Platform: evil, AccountURL: "https://h/a"},
		ports.TemplateOrderRefunded:      ports.OrderRefundedEmail{Reference: "LS-1", Products: []string{evil}},
		ports.TemplateLicenseExpiring:    ports.LicenseExpiryEmail{Product: evil, KeyMasked: "VST-•••", AccountURL: "https://h/a"},
		ports.TemplateSupportAlert:       ports.SupportAlertEmail{Subject: evil, Reason: evil, Detail: "Order id named: " + evil, AdminHint: evil},
		ports.TemplateLicenseKeyReissued: ports.LicenseKeyReissuedEmail{Product: evil, Key: "VST-B", AccountURL: "https://h/a"},
	}
	for name, d := range data {
		subject, text, html, err := r.Render(name, d)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if strings.Contains(html, "<script") || !strings.Contains(html, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; Co") {
			t.Errorf("%s: html not escaped:\n%s", name, html)
		}
		if !strings.Contains(text, evil) {
			t.Errorf("%s: text changed the name:\n%s", name, text)
		}
		_ = subject
	}
	// A link with another scheme never becomes a live link.
	_, _, html, err := r.Render(ports.TemplateSignInLink, ports.SignInLinkEmail{URL: "javascript:alert(1)"})
	if err != nil || strings.Contains(html, `href="javascript:`) || !strings.Contains(html, "#ZgotmplZ") {
		t.Fatalf("javascript link: %v\n%s", err, html)
	}
}

// A subject is one line whatever the data held: no header can be smuggled in by a product name.
func TestSubjectIsOneLine(t *testing.T) {
	r := newRenderer(t)
	subject, _, _, err := r.Render(ports.TemplateLicenseKeyReissued, ports.LicenseKeyReissuedEmail{Product: "Synth\r\nBcc: x@evil.example\n  One"})
	if err != nil || subject != "Your new license key for Synth Bcc: x@evil.example One" {
		t.Fatalf("subject %q %v", subject, err)
	}
}

// An e-mail whose data carries no key (recovery of a key the owner must sign in to see) shows no
// key, and the expiry e-mails show the masked key they are given.
func TestKeysShownOnlyWhenGiven(t *testing.T) {
	r := newRenderer(t)
	_, text, html, err := r.Render(ports.TemplateLicenseRecovery, ports.LicenseRecoveryEmail{
		Licenses: []ports.EmailLicense{{Product: "Synth", MaxActivations: 2}}, AccountURL: "https://h/a"})
	if err != nil || !strings.Contains(text, "(sign in to your account to see it)") || !strings.Contains(html, "Sign in to your account to see the key.") ||
		strings.Contains(text, "VST-") {
		t.Fatalf("%v\n%s\n%s", err, text, html)
	}
	_, text, _, err = r.Render(ports.TemplateLicenseRecovery, ports.LicenseRecoveryEmail{AccountURL: "https://h/a"})
	if err != nil || !strings.Contains(text, "There are no licenses for this address.") {
		t.Fatalf("%v\n%s", err, text)
	}
}

func TestSubjectVariants(t *testing.T) {
	r := newRenderer(t)
	for _, c := range []struct {
		template string
		data     any
		want     string
	}{
		{ports.TemplateLicenseDelivery, ports.LicenseDeliveryEmail{Reference: "LS-000007", SamplePacks: []string{"Drums"}}, "Your order LS-000007 is ready"},
		{ports.TemplateOrderRefunded, ports.OrderRefundedEmail{Reference: "LS-000007", Disputed: true}, "The payment of your order LS-000007 was disputed"},
		{ports.TemplateSupportAlert, ports.SupportAlertEmail{Subject: "Payment without an order"}, "[Acme Audio] Payment without an order"},
	} {
		subject, text, _, err := r.Render(c.template, c.data)
		if err != nil || subject != c.want {
			t.Errorf("%s: subject %q, want %q (%v)", c.template, subject, c.want, err)
		}
		if c.template == ports.TemplateOrderRefunded && !strings.Contains(text, "disputed with your bank") {
			t.Errorf("dispute text:\n%s", text)
		}
	}
}

// A pointer to the data renders the same; an unknown template, another struct, nil or a nil
// pointer is an errs.Internal error (a programming error of the caller).
func TestRenderRefusesWrongInput(t *testing.T) {
	r := newRenderer(t)
	d := sampleData()[ports.TemplateDeviceApproval].(ports.DeviceApprovalEmail)
	s1, t1, h1, err1 := r.Render(ports.TemplateDeviceApproval, d)
	s2, t2, h2, err2 := r.Render(ports.TemplateDeviceApproval, &d)
	if err1 != nil || err2 != nil || s1 != s2 || t1 != t2 || h1 != h2 {
		t.Fatalf("pointer renders differently: %v %v", err1, err2)
	}
	var nilDevice *ports.DeviceApprovalEmail
	for name, c := range map[string]struct {
		template string
		data     any
	}{
		"unknown template": {"welcome", d},
		"other struct":     {ports.TemplateDeviceApproval, ports.DeviceEmail{}},
		"device for claim": {ports.TemplateDeviceActivated, d},
		"nil":              {ports.TemplateSignInLink, nil},
		"nil pointer":      {ports.TemplateDeviceApproval, nilDevice},
		"a map":            {ports.TemplateSignInLink, map[string]string{"URL": "x"}},
	} {
		subject, text, html, err := r.Render(c.template, c.data)
		if errs.KindOf(err) != errs.Internal || subject != "" || text != "" || html != "" {
			t.Errorf("%s: %q %v", name, subject, err)
		}
		if e, _ := errs.As(err); e != nil && e.Message != "internal error" {
			t.Errorf("%s: message %q leaks", name, e.Message)
		}
	}
}

func TestOptions(t *testing.T) {
	r, err := New(Options{VendorName: "  Loud\n Noises  ", BrandColor: "#123", AccentColor: "#AbCdEf"})
	if err != nil {
		t.Fatal(err)
	}
	subject, text, html, err := r.Render(ports.TemplateSignInLink, ports.SignInLinkEmail{URL: "https://h/l", ExpiresAt: time.Unix(0, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if subject != "Sign in to Loud Noises" || !strings.Contains(html, "background-color:#123;color:#ffffff") ||
		!strings.Contains(html, "background-color:#AbCdEf") || strings.Contains(html, "mailto:") || strings.Contains(text, "Questions?") {
		t.Fatalf("%q\n%s\n%s", subject, text, html)
	}
	// Defaults: the vendor "Samplero", the accent is the brand colour.
	r, err = New(Options{BrandColor: "#224466"})
	if err != nil {
		t.Fatal(err)
	}
	subject, _, html, _ = r.Render(ports.TemplateSignInLink, ports.SignInLinkEmail{URL: "https://h/l"})
	if subject != "Sign in to Samplero" || !strings.Contains(html, "background-color:#224466;color:#ffffff;text-decoration:none") {
		t.Fatalf("%q\n%s", subject, html)
	}
	for name, o := range map[string]Options{
		"css in brand":   {BrandColor: "red;background:url(https://evil.example/x)"},
		"named colour":   {BrandColor: "teal"},
		"bad accent":     {AccentColor: "#12345"},
		"support no @":   {SupportEmail: "support"},
		"five hex digit": {BrandColor: "#0f766"},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// The renderer is shared by every request: concurrent renders are safe (run with -race).
func TestConcurrentRenders(t *testing.T) {
	r := newRenderer(t)
	data := sampleData()
	want := map[string]string{}
	for name, d := range data {
		_, text, _, err := r.Render(name, d)
		if err != nil {
			t.Fatal(err)
		}
		want[name] = text
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for name, d := range data {
				if _, text, _, err := r.Render(name, d); err != nil || text != want[name] {
					t.Errorf("%s: %v", name, err)
				}
			}
		})
	}
	wg.Wait()
}

func TestHelpers(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{money(4900, "eur"), "49.00 EUR"}, {money(5, "USD"), "0.05 USD"}, {money(-250, "EUR"), "-2.50 EUR"},
		{money(4900, "JPY"), "4900 JPY"}, {devices(1), "1 device"}, {devices(0), "0 devices"},
		{platform("win"), "Windows"}, {platform("linux"), "Linux"}, {platform("amiga"), "amiga"}, {platform(""), "(unknown)"},
		{kind("sample_pack"), "sample pack"}, {day((*time.Time)(nil)), ""},
		{when(time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("CET", 3600))), "2 January 2026, 02:04 UTC"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}
