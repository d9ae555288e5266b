package emailtmpl

import (
	"time"

	"github.com/samplero/samplero/ports"
)

// Realistic sample data for every template: the tests render it, and docs/emails/ is rendered
// from it so that a person can look at each e-mail.

var (
	sampleNow     = time.Date(2026, 11, 29, 14, 30, 0, 0, time.UTC)
	sampleExpires = time.Date(2027, 11, 29, 0, 0, 0, 0, time.UTC)
)

const (
	sampleAccountURL = "https://licenses.acme-audio.example/account"
	sampleOrderURL   = "https://licenses.acme-audio.example/orders/ord_01JD8X2K7Q?token=pK3x9-aQ_7mZ"
	sampleKeySynth   = "VST-7KQ2M-XW4PD-9RTZB-HC3NF"
	sampleKeyKeys    = "VST-M3D8R-2QWXT-PLK7Z-4FN9B"
)

func sampleData() map[string]any {
	return map[string]any{
		ports.TemplateLicenseDelivery: ports.LicenseDeliveryEmail{
			Reference: "LS-000123",
			OrderURL:  sampleOrderURL,
			Licenses: []ports.EmailLicense{
				{Product: "Space Echo", Key: sampleKeySynth, MaxActivations: 4},
				{Product: "Keys (Studio Bundle)", Key: sampleKeyKeys, MaxActivations: 3, ExpiresAt: &sampleExpires},
			},
			SamplePacks: []string{"Drum Pack Vol. 2", "Loop Pack (Studio Bundle)"},
			Downloads: []ports.EmailDownload{
				{Product: "Space Echo", Kind: "plugin", URL: "https://licenses.acme-audio.example/orders/ord_01JD8X2K7Q/download/space-echo?token=pK3x9-aQ_7mZ"},
				{Product: "Drum Pack Vol. 2", Kind: "sample_pack", URL: "https://licenses.acme-audio.example/orders/ord_01JD8X2K7Q/download/drums-2?token=pK3x9-aQ_7mZ"},
			},
			TotalCents: 12800,
			Currency:   "EUR",
		},
		ports.TemplateSignInLink: ports.SignInLinkEmail{
			URL:       "https://licenses.acme-audio.example/auth/verify?token=Zt1Xo2Qm-Ls9vRbN4dA",
			ExpiresAt: sampleNow.Add(15 * time.Minute),
			Addr:      "203.0.113.7",
		},
		ports.TemplateLicenseRecovery: ports.LicenseRecoveryEmail{
			Licenses: []ports.EmailLicense{
				{Product: "Space Echo", Key: sampleKeySynth, MaxActivations: 4},
				{Product: "Keys", Key: sampleKeyKeys, MaxActivations: 3, ExpiresAt: &sampleExpires},
			},
			AccountURL: sampleAccountURL,
		},
		ports.TemplateDeviceApproval: ports.DeviceApprovalEmail{
			Product:     "Space Echo",
			DeviceName:  "Studio Mac",
			Platform:    "mac",
			Fingerprint: "a3f1c9e2b7d4",
			RequestAddr: "203.0.113.7",
			RequestedAt: sampleNow,
			ExpiresAt:   sampleNow.Add(15 * time.Minute),
			ConfirmURL:  "https://licenses.acme-audio.example/claims/confirm?token=Hq7vW2xP9kLm",
		},
		ports.TemplateDeviceActivated: sampleDevice(),
		ports.TemplateDeviceRemoved: func() ports.DeviceEmail {
			d := sampleDevice()
			d.DeviceName, d.Platform, d.SeatsUsed = "Old Laptop", "win", 1
			return d
		}(),
		ports.TemplateDeviceSuperseded: sampleDevice(),
		ports.TemplateOrderRefunded: ports.OrderRefundedEmail{
			Reference: "LS-000123",
			Products:  []string{"Space Echo", "Drum Pack Vol. 2"},
		},
		ports.TemplateLicenseExpiring: ports.LicenseExpiryEmail{
			Product:    "Keys",
			KeyMasked:  "VST-M3D8R-•••••-•••••-4FN9B",
			ExpiresAt:  sampleExpires,
			AccountURL: sampleAccountURL,
		},
		ports.TemplateLicenseExpired: ports.LicenseExpiryEmail{
			Product:    "Keys",
			KeyMasked:  "VST-M3D8R-•••••-•••••-4FN9B",
			ExpiresAt:  sampleExpires,
			AccountURL: sampleAccountURL,
		},
		ports.TemplateSupportAlert: ports.SupportAlertEmail{
			Subject:   "Order held for review: amount mismatch",
			Reference: "LS-000123",
			OrderID:   "ord_01JD8X2K7Q",
			Reason:    "The amount or currency paid through a Payment Link does not cover the order. The order is held and nothing was delivered.",
			Detail:    "Order: LS-000123 (ord_01JD8X2K7Q)\nCustomer: buyer@example.com\nStatus: pending\nHeld for: amount_mismatch\nOrder total: 128.00 EUR\nPaid: 40.00 USD\nProvider: stripe\nPayment: pi_3QeX8",
			AdminHint: "Look at the order with GET /v1/admin/orders/ord_01JD8X2K7Q, then release the hold with POST /v1/admin/orders/ord_01JD8X2K7Q/release (fulfilment runs again) or refund it with POST /v1/admin/orders/ord_01JD8X2K7Q/refund.",
		},
		ports.TemplateLicenseKeyReissued: ports.LicenseKeyReissuedEmail{
			Product:    "Space Echo",
			Key:        "VST-Q8ZL2-R7NXK-3MWD4-TB9PC",
			AccountURL: sampleAccountURL,
		},
	}
}

func sampleDevice() ports.DeviceEmail {
	return ports.DeviceEmail{
		Product:     "Space Echo",
		DeviceName:  "Studio Mac",
		Platform:    "mac",
		Fingerprint: "a3f1c9e2b7d4",
		At:          sampleNow,
		SeatsUsed:   2,
		SeatsTotal:  4,
		AccountURL:  sampleAccountURL,
	}
}

func sampleOptions() Options {
	return Options{
		VendorName:   "Acme Audio",
		SupportEmail: "support@acme-audio.example",
		FooterText:   "Acme Audio GmbH, Beispielstraße 1, 10115 Berlin",
	}
}
