package ports

import "time"

// E-mail templates. The cores decide what to say (a template name and its data); the renderer (an
// adapter holding the html/template + text/template files, one layout, the vendor's name and
// colours) decides how it looks. Every template has an HTML and a plain-text part.
const (
	TemplateLicenseDelivery    = "license_delivery"     // LicenseDeliveryEmail
	TemplateSignInLink         = "sign_in_link"         // SignInLinkEmail
	TemplateLicenseRecovery    = "license_recovery"     // LicenseRecoveryEmail
	TemplateDeviceApproval     = "device_approval"      // DeviceApprovalEmail
	TemplateDeviceActivated    = "device_activated"     // DeviceEmail
	TemplateDeviceRemoved      = "device_removed"       // DeviceEmail
	TemplateDeviceSuperseded   = "device_superseded"    // DeviceEmail
	TemplateOrderRefunded      = "order_refunded"       // OrderRefundedEmail
	TemplateLicenseExpiring    = "license_expiring"     // LicenseExpiryEmail (7 days before)
	TemplateLicenseExpired     = "license_expired"      // LicenseExpiryEmail
	TemplateSupportAlert       = "support_alert"        // SupportAlertEmail (to the operator)
	TemplateLicenseKeyReissued = "license_key_reissued" // LicenseKeyReissuedEmail
)

// EmailRenderer renders a template with its data.
type EmailRenderer interface {
	// Render returns the subject and both parts. An unknown template or data of the wrong type is
	// an errs.Internal error.
	Render(template string, data any) (subject, text, html string, err error)
}

// EmailLicense is one license as e-mails show it.
type EmailLicense struct {
	Product        string // product name
	Key            string // formatted key; "" when the e-mail must not carry it
	MaxActivations int
	ExpiresAt      *time.Time
}

// EmailDownload is one download link.
type EmailDownload struct {
	Product string // product name
	Kind    string // plugin | sample_pack
	URL     string // stable link (a fresh signed link on each click)
}

// LicenseDeliveryEmail is the delivery of a fulfilled order.
type LicenseDeliveryEmail struct {
	Reference   string // LS-000123
	OrderURL    string
	Licenses    []EmailLicense // plugins
	SamplePacks []string       // names of sample packs (no key: "ready to download")
	Downloads   []EmailDownload
	TotalCents  int64
	Currency    string
}

// SignInLinkEmail carries a single-use sign-in link.
type SignInLinkEmail struct {
	URL       string
	ExpiresAt time.Time
	Addr      string // where the request came from
}

// LicenseRecoveryEmail lists every license of an address.
type LicenseRecoveryEmail struct {
	Licenses   []EmailLicense
	AccountURL string // the portal's sign-in page
}

// DeviceApprovalEmail asks the owner to approve a new device.
type DeviceApprovalEmail struct {
	Product     string
	DeviceName  string
	Platform    string
	Fingerprint string
	RequestAddr string
	RequestedAt time.Time
	ExpiresAt   time.Time
	ConfirmURL  string // the confirmation page (acts only on a POST from it)
}

// DeviceEmail tells the owner about a device of one of their licenses.
type DeviceEmail struct {
	Product     string
	DeviceName  string
	Platform    string
	Fingerprint string
	At          time.Time
	SeatsUsed   int
	SeatsTotal  int
	AccountURL  string
}

// OrderRefundedEmail tells the buyer that an order was refunded (or disputed) and access ended.
type OrderRefundedEmail struct {
	Reference string
	Disputed  bool
	Products  []string
}

// LicenseExpiryEmail warns of (or reports) a license's expiry.
type LicenseExpiryEmail struct {
	Product    string
	KeyMasked  string // VST-ABCDE-•••••-•••••-WXYZ1 style: never the whole key
	ExpiresAt  time.Time
	AccountURL string
}

// SupportAlertEmail tells the operator that an order needs a person.
type SupportAlertEmail struct {
	Subject   string
	Reference string
	OrderID   string
	Reason    string
	Detail    string
	AdminHint string // what to do, e.g. the release call
}

// LicenseKeyReissuedEmail carries a license's new key after the owner reissued it.
type LicenseKeyReissuedEmail struct {
	Product    string
	Key        string
	AccountURL string
}
