package portstest_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
	"github.com/samplero/samplero/ports/portstest"
)

func TestFakeEmailRenderer(t *testing.T) {
	r := portstest.NewEmailRenderer()
	exp := time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC)
	data := ports.LicenseDeliveryEmail{
		Reference: "LS-000123", OrderURL: "https://h/o?token=t",
		Licenses:  []ports.EmailLicense{{Product: "Synth", Key: "VST-AAAAA", MaxActivations: 2, ExpiresAt: &exp}},
		Downloads: []ports.EmailDownload{{Product: "Synth", Kind: "plugin", URL: "https://h/d"}},
	}
	subject, text, html, err := r.Render(ports.TemplateLicenseDelivery, &data)
	if err != nil {
		t.Fatal(err)
	}
	if subject != "license_delivery: LS-000123" {
		t.Fatalf("subject %q", subject)
	}
	for _, line := range []string{"Reference: LS-000123", "OrderURL: https://h/o?token=t", "Licenses[0].Key: VST-AAAAA",
		"Licenses[0].MaxActivations: 2", "Licenses[0].ExpiresAt: 2027-01-02T03:04:05Z", "Downloads[0].URL: https://h/d"} {
		if !strings.Contains(text, line+"\n") {
			t.Errorf("text lacks %q:\n%s", line, text)
		}
	}
	if html != "<pre>"+strings.ReplaceAll(text, "&", "&amp;")+"</pre>" {
		t.Fatalf("html %q", html)
	}
	_, _, html, _ = r.Render(ports.TemplateDeviceActivated, ports.DeviceEmail{DeviceName: "<b>Mac</b>"})
	if strings.Contains(html, "<b>") {
		t.Fatalf("html not escaped: %s", html)
	}

	// Wrong pairs are the renderer's Internal error, recorded with the call.
	for _, c := range []struct {
		template string
		data     any
	}{{"welcome", data}, {ports.TemplateDeviceApproval, ports.DeviceEmail{}}, {ports.TemplateSignInLink, nil}} {
		if _, _, _, err := r.Render(c.template, c.data); errs.KindOf(err) != errs.Internal {
			t.Errorf("%s %T: %v", c.template, c.data, err)
		}
	}
	r.Fail(errors.New("boom"))
	if _, _, _, err := r.Render(ports.TemplateSignInLink, ports.SignInLinkEmail{}); err == nil || err.Error() != "boom" {
		t.Fatalf("Fail: %v", err)
	}
	calls := r.Calls()
	if len(calls) != 6 || calls[0].Subject != subject || calls[2].Err == nil || calls[5].Err == nil {
		t.Fatalf("calls %+v", calls)
	}
	if got := r.CallsOf(ports.TemplateLicenseDelivery); len(got) != 1 || got[0].Data.(*ports.LicenseDeliveryEmail).Reference != "LS-000123" {
		t.Fatalf("CallsOf %+v", got)
	}
	if len(portstest.EmailTemplateData) != 12 {
		t.Fatalf("%d templates", len(portstest.EmailTemplateData))
	}
}
