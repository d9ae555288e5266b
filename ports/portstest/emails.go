package portstest

import (
	"fmt"
	"html"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/ports"
)

// EmailTemplateData maps every ports.Template* name to the data struct it renders. The fake and
// the real renderer (adapters/emailtmpl) both refuse any other pairing, so a core test fails when a
// service passes the wrong struct.
var EmailTemplateData = map[string]any{
	ports.TemplateLicenseDelivery:    ports.LicenseDeliveryEmail{},
	ports.TemplateSignInLink:         ports.SignInLinkEmail{},
	ports.TemplateLicenseRecovery:    ports.LicenseRecoveryEmail{},
	ports.TemplateDeviceApproval:     ports.DeviceApprovalEmail{},
	ports.TemplateDeviceActivated:    ports.DeviceEmail{},
	ports.TemplateDeviceRemoved:      ports.DeviceEmail{},
	ports.TemplateDeviceSuperseded:   ports.DeviceEmail{},
	ports.TemplateOrderRefunded:      ports.OrderRefundedEmail{},
	ports.TemplateLicenseExpiring:    ports.LicenseExpiryEmail{},
	ports.TemplateLicenseExpired:     ports.LicenseExpiryEmail{},
	ports.TemplateSupportAlert:       ports.SupportAlertEmail{},
	ports.TemplateLicenseKeyReissued: ports.LicenseKeyReissuedEmail{},
}

// EmailRenderCall is one Render call the fake answered (or refused).
type EmailRenderCall struct {
	Template string
	Data     any
	Subject  string
	Text     string
	HTML     string
	Err      error
}

// EmailRenderer is a fake ports.EmailRenderer for core tests. It renders no layout: the subject is
// "<template>: <key field>" (the reference, device name, product… of the data), the text is every
// field of the data, one "Path: value" line each (strings as they are, times in RFC 3339 UTC,
// nested licenses and downloads as Licenses[0].Key…), and the HTML is the same text, escaped, in a
// <pre>. So a core test can assert that a link, a key or a device name reached the e-mail, and read
// the data itself from Calls. Safe for concurrent use.
type EmailRenderer struct {
	mu    sync.Mutex
	calls []EmailRenderCall
	err   error
}

var _ ports.EmailRenderer = (*EmailRenderer)(nil)

// NewEmailRenderer returns a fake renderer that renders every template.
func NewEmailRenderer() *EmailRenderer { return &EmailRenderer{} }

// Fail makes every later Render return err (nil renders again).
func (r *EmailRenderer) Fail(err error) {
	r.mu.Lock()
	r.err = err
	r.mu.Unlock()
}

// Render implements ports.EmailRenderer. An unknown template, or data that is not the template's
// struct (or a non-nil pointer to it), is an errs.Internal error, as with the real renderer.
func (r *EmailRenderer) Render(template string, data any) (subject, text, htmlPart string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	call := EmailRenderCall{Template: template, Data: data}
	defer func() { r.calls = append(r.calls, call) }()
	if r.err != nil {
		call.Err = r.err
		return "", "", "", r.err
	}
	v, err := checkEmailData(template, data)
	if err != nil {
		call.Err = err
		return "", "", "", err
	}
	var lines []string
	flatten(&lines, "", v)
	call.Subject = template + ": " + keyField(v)
	call.Text = strings.Join(lines, "\n") + "\n"
	call.HTML = "<pre>" + html.EscapeString(call.Text) + "</pre>"
	return call.Subject, call.Text, call.HTML, nil
}

// Calls returns every Render call so far, in order.
func (r *EmailRenderer) Calls() []EmailRenderCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]EmailRenderCall(nil), r.calls...)
}

// CallsOf returns the successful Render calls of one template, in order.
func (r *EmailRenderer) CallsOf(template string) []EmailRenderCall {
	var out []EmailRenderCall
	for _, c := range r.Calls() {
		if c.Template == template && c.Err == nil {
			out = append(out, c)
		}
	}
	return out
}

// checkEmailData returns data as the template's struct value (dereferencing a pointer), or an
// errs.Internal error for an unknown template or data of another type.
func checkEmailData(template string, data any) (reflect.Value, error) {
	want, ok := EmailTemplateData[template]
	if !ok {
		return reflect.Value{}, errs.Internalf("e-mail: unknown template %q", template)
	}
	v := reflect.ValueOf(data)
	if v.Kind() == reflect.Pointer && !v.IsNil() {
		v = v.Elem()
	}
	if !v.IsValid() || v.Type() != reflect.TypeOf(want) {
		return reflect.Value{}, errs.Internalf("e-mail: template %q renders %T, not %T", template, want, data)
	}
	return v, nil
}

// keyField is what the fake's subject names: the field a reader of the mailbox would look for.
func keyField(v reflect.Value) string {
	for _, name := range []string{"Reference", "DeviceName", "Subject", "Product", "URL", "AccountURL"} {
		if f := v.FieldByName(name); f.IsValid() && f.Kind() == reflect.String && f.String() != "" {
			return f.String()
		}
	}
	return ""
}

var timeType = reflect.TypeOf(time.Time{})

// flatten appends one "Path: value" line per leaf of v.
func flatten(lines *[]string, path string, v reflect.Value) {
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			*lines = append(*lines, path+": ")
			return
		}
		v = v.Elem()
	}
	switch {
	case v.Type() == timeType:
		*lines = append(*lines, path+": "+v.Interface().(time.Time).UTC().Format(time.RFC3339))
	case v.Kind() == reflect.Struct:
		for i := range v.NumField() {
			f := v.Type().Field(i)
			if !f.IsExported() {
				continue
			}
			p := f.Name
			if path != "" {
				p = path + "." + f.Name
			}
			flatten(lines, p, v.Field(i))
		}
	case v.Kind() == reflect.Slice:
		for i := range v.Len() {
			flatten(lines, path+"["+strconv.Itoa(i)+"]", v.Index(i))
		}
	default:
		*lines = append(*lines, fmt.Sprintf("%s: %v", path, v.Interface()))
	}
}
