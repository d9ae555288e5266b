package commerce

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/samplero/samplero/core/commerce/catalog"
	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/licensing/license"
	"github.com/samplero/samplero/ports"
	"github.com/samplero/samplero/ports/portstest"
)

// The test harness of the commerce service, shared by every test file of the package: the service
// over portstest.MemStore (commerce repositories and the transaction port), a fake clock, and fakes
// of the other ports it drives.
//
// The fake licensing context keeps its products and licenses in the same MemStore (its licensing
// repositories), so its writes take part in the transaction carried by ctx exactly as the real
// licensing service's do in production: a use case that fails after registering a product or
// issuing a license rolls those back too.

// ---- licensing ----

// statusChange is one ChangeLicenseStatus call.
type statusChange struct {
	ID, Action, Reason string
}

// fakeLicensing implements the part of ports.Licensing commerce uses: PutProduct, GetProduct,
// CreateLicense (idempotent on IdempotencyKey), GetLicense, ChangeLicenseStatus and
// LicenseIDForKey. The rest returns an internal error. It validates like the real service (the
// license aggregate's ValidateProduct and NormalizePolicy).
type fakeLicensing struct {
	clock    ports.Clock
	products ports.ProductRepo
	licenses ports.LicenseRepo

	mu      sync.Mutex
	puts    []ports.ProductSpec
	creates []ports.CreateLicenseCommand
	changes []statusChange
	// putErr makes PutProduct fail; createErr, when it returns an error for a command, makes that
	// CreateLicense fail (after nothing was written).
	putErr    error
	createErr func(ports.CreateLicenseCommand) error
}

var _ ports.Licensing = (*fakeLicensing)(nil)

func (l *fakeLicensing) now() time.Time { return l.clock.Now().UTC().Truncate(time.Second) }

func (l *fakeLicensing) PutProduct(ctx context.Context, spec ports.ProductSpec) (license.ProductRecord, error) {
	l.mu.Lock()
	l.puts = append(l.puts, spec)
	err := l.putErr
	l.mu.Unlock()
	if err != nil {
		return license.ProductRecord{}, err
	}
	if err := license.ValidateProduct(license.ProductFields{Slug: spec.Slug, Name: spec.Name, Type: spec.Type, PriceCents: spec.PriceCents, Currency: spec.Currency}); err != nil {
		return license.ProductRecord{}, err
	}
	pol, err := license.NormalizePolicy(license.PolicySpec(spec.Policy))
	if err != nil {
		return license.ProductRecord{}, err
	}
	now := l.now()
	p := license.ProductRecord{Slug: spec.Slug, Name: spec.Name, Type: spec.Type, PriceCents: spec.PriceCents,
		Currency: spec.Currency, Policy: pol, CreatedAt: now, UpdatedAt: now}
	old, err := l.products.Get(ctx, spec.Slug)
	switch {
	case err == nil:
		p.CreatedAt, p.Entitlements = old.CreatedAt, old.Entitlements
	case errs.KindOf(err) != errs.NotFound:
		return license.ProductRecord{}, err
	}
	if err := l.products.Upsert(ctx, p); err != nil {
		return license.ProductRecord{}, err
	}
	return p, nil
}

func (l *fakeLicensing) GetProduct(ctx context.Context, slug string) (license.ProductRecord, error) {
	p, err := l.products.Get(ctx, slug)
	if errs.KindOf(err) == errs.NotFound {
		return p, errs.E(errs.NotFound, license.CodeProductNotFound, "product not found")
	}
	return p, err
}

// fakeKeyHash stands in for the vault's lookup HMAC.
func fakeKeyHash(canonical string) []byte {
	h := sha256.Sum256([]byte("lookup:" + canonical))
	return h[:]
}

func (l *fakeLicensing) view(r license.LicenseRecord) ports.LicenseView {
	return ports.LicenseView{
		ID: r.ID, Key: license.FormatKey(string(r.KeySealed)), Status: string(license.EffectiveLicenseStatus(r, l.now())),
		Product: r.Product, OwnerEmail: r.OwnerEmail, MaxActivations: r.MaxActivations, ExpiresAt: r.ExpiresAt,
		CreatedAt: r.CreatedAt, Activations: []ports.ActivationView{},
	}
}

func (l *fakeLicensing) CreateLicense(ctx context.Context, cmd ports.CreateLicenseCommand) (ports.LicenseView, error) {
	l.mu.Lock()
	l.creates = append(l.creates, cmd)
	hook := l.createErr
	l.mu.Unlock()
	if hook != nil {
		if err := hook(cmd); err != nil {
			return ports.LicenseView{}, err
		}
	}
	if cmd.IdempotencyKey != "" {
		r, err := l.licenses.ByIdempotencyKey(ctx, cmd.IdempotencyKey)
		if err == nil {
			return l.view(r), nil
		}
		if errs.KindOf(err) != errs.NotFound {
			return ports.LicenseView{}, err
		}
	}
	prod, err := l.products.Get(ctx, cmd.Product)
	if errs.KindOf(err) == errs.NotFound {
		return ports.LicenseView{}, errs.Validation("product does not exist")
	}
	if err != nil {
		return ports.LicenseView{}, err
	}
	key, err := license.GenerateKey(license.PrefixForProductType(prod.Type), rand.Reader)
	if err != nil {
		return ports.LicenseView{}, err
	}
	now := l.now()
	r := license.LicenseRecord{
		ID: license.NewID(license.IDPrefixLicense), KeyHash: fakeKeyHash(key), KeySealed: []byte(key),
		KeyPrefix: license.PrefixForProductType(prod.Type), Product: prod.Slug, Entitlements: prod.Entitlements,
		OwnerEmail: strings.ToLower(cmd.OwnerEmail), MaxActivations: prod.Policy.MaxActivations,
		Status: license.LicenseActive, ExpiresAt: cmd.ExpiresAt, CreatedAt: now, UpdatedAt: now,
		IdempotencyKey: cmd.IdempotencyKey,
	}
	if cmd.MaxActivations != nil {
		if *cmd.MaxActivations < 1 {
			return ports.LicenseView{}, errs.Validation("max_activations must be at least 1")
		}
		r.MaxActivations = *cmd.MaxActivations
	}
	if err := l.licenses.Insert(ctx, r); err != nil {
		return ports.LicenseView{}, err
	}
	return l.view(r), nil
}

func (l *fakeLicensing) GetLicense(ctx context.Context, id string) (ports.LicenseView, error) {
	r, err := l.licenses.Get(ctx, id)
	if errs.KindOf(err) == errs.NotFound {
		return ports.LicenseView{}, errs.E(errs.NotFound, license.CodeLicenseNotFound, "license not found")
	}
	if err != nil {
		return ports.LicenseView{}, err
	}
	return l.view(r), nil
}

func (l *fakeLicensing) ChangeLicenseStatus(ctx context.Context, id, action, reason string) (ports.LicenseView, error) {
	l.mu.Lock()
	l.changes = append(l.changes, statusChange{ID: id, Action: action, Reason: reason})
	l.mu.Unlock()
	r, err := l.licenses.Get(ctx, id)
	if errs.KindOf(err) == errs.NotFound {
		return ports.LicenseView{}, errs.E(errs.NotFound, license.CodeLicenseNotFound, "license not found")
	}
	if err != nil {
		return ports.LicenseView{}, err
	}
	next, changed, err := license.ChangeStatus(r, action, reason, l.now())
	if err != nil {
		return ports.LicenseView{}, err
	}
	if changed {
		if err := l.licenses.Update(ctx, next); err != nil {
			return ports.LicenseView{}, err
		}
	}
	return l.view(next), nil
}

func (l *fakeLicensing) LicenseIDForKey(ctx context.Context, key string) (string, error) {
	canonical, ok := license.NormalizeKey(key)
	if ok {
		r, err := l.licenses.ByKeyHash(ctx, fakeKeyHash(canonical))
		if err == nil {
			return r.ID, nil
		}
		if errs.KindOf(err) != errs.NotFound {
			return "", err
		}
	}
	return "", errs.E(errs.NotFound, license.CodeLicenseNotFound, "license not found")
}

// license returns the stored record of a license (for assertions).
func (l *fakeLicensing) license(t *testing.T, id string) license.LicenseRecord {
	t.Helper()
	r, err := l.licenses.Get(context.Background(), id)
	if err != nil {
		t.Fatalf("license %s: %v", id, err)
	}
	return r
}

func (l *fakeLicensing) putCalls() []ports.ProductSpec {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]ports.ProductSpec(nil), l.puts...)
}

func (l *fakeLicensing) createCalls() []ports.CreateLicenseCommand {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]ports.CreateLicenseCommand(nil), l.creates...)
}

func (l *fakeLicensing) statusChanges() []statusChange {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]statusChange(nil), l.changes...)
}

func notUsed() error { return errs.Internalf("fakeLicensing: not used by commerce") }

func (*fakeLicensing) ResolveCSR(context.Context, string, string) (ports.DeviceIdentity, error) {
	return ports.DeviceIdentity{}, notUsed()
}
func (*fakeLicensing) ResolveClaim(context.Context, string, string) (ports.DeviceIdentity, error) {
	return ports.DeviceIdentity{}, notUsed()
}
func (*fakeLicensing) ResolveStatusKey(context.Context, string) (ports.DeviceIdentity, bool, error) {
	return ports.DeviceIdentity{}, false, notUsed()
}
func (*fakeLicensing) ResolveCertificate(context.Context, string, string, ports.DeviceOp) (ports.DeviceIdentity, error) {
	return ports.DeviceIdentity{}, notUsed()
}
func (*fakeLicensing) ResolveKey(context.Context, string, ports.DeviceOp) (ports.DeviceIdentity, error) {
	return ports.DeviceIdentity{}, notUsed()
}
func (*fakeLicensing) Activate(context.Context, ports.ActivateCommand) (ports.ActivateResult, error) {
	return ports.ActivateResult{}, notUsed()
}
func (*fakeLicensing) Bootstrap(context.Context, ports.DeviceIdentity) (ports.ActivateResult, error) {
	return ports.ActivateResult{}, notUsed()
}
func (*fakeLicensing) Validate(context.Context, ports.ValidateCommand) (ports.ValidateResult, error) {
	return ports.ValidateResult{}, notUsed()
}
func (*fakeLicensing) Heartbeat(context.Context, ports.HeartbeatCommand) (ports.HeartbeatResult, error) {
	return ports.HeartbeatResult{}, notUsed()
}
func (*fakeLicensing) Deactivate(context.Context, ports.DeactivateCommand) (ports.DeactivateResult, error) {
	return ports.DeactivateResult{}, notUsed()
}
func (*fakeLicensing) Renew(context.Context, ports.RenewCommand) (ports.RenewResult, error) {
	return ports.RenewResult{}, notUsed()
}
func (*fakeLicensing) Status(context.Context, string) (ports.StatusResult, error) {
	return ports.StatusResult{}, notUsed()
}
func (*fakeLicensing) ListLicenses(context.Context, ports.LicenseFilter) ([]ports.LicenseView, string, error) {
	return nil, "", notUsed()
}
func (*fakeLicensing) ListActivations(context.Context, ports.ActivationFilter) ([]ports.ActivationView, string, error) {
	return nil, "", notUsed()
}
func (*fakeLicensing) ReleaseSeat(context.Context, string) (ports.LicenseView, error) {
	return ports.LicenseView{}, notUsed()
}
func (*fakeLicensing) DecideClaim(context.Context, string, bool, string) (ports.ClaimView, error) {
	return ports.ClaimView{}, notUsed()
}
func (*fakeLicensing) ClaimByToken(context.Context, string) (ports.ClaimView, error) {
	return ports.ClaimView{}, notUsed()
}
func (*fakeLicensing) DecideClaimByToken(context.Context, string, bool) (ports.ClaimView, error) {
	return ports.ClaimView{}, notUsed()
}

// ---- object store ----

// fakeObjects is an in-memory ports.ObjectStore. Put reads exactly size bytes (like an S3 upload
// with a content length); DownloadURL returns mem://<key>?exp=<unix> with the expiry from the
// clock.
type fakeObjects struct {
	clock ports.Clock

	mu      sync.Mutex
	objects map[string][]byte
	puts    []string // keys, in call order
	deletes []string
	links   []fakeLink
	// putErr, deleteErr and linkErr make the calls fail.
	putErr, deleteErr, linkErr error
}

// fakeLink is one DownloadURL call.
type fakeLink struct {
	Key, FileName string
	TTL           time.Duration
}

var _ ports.ObjectStore = (*fakeObjects)(nil)

func (o *fakeObjects) Put(_ context.Context, key string, r io.Reader, size int64, _ string) (ports.ObjectInfo, error) {
	o.mu.Lock()
	o.puts = append(o.puts, key)
	err := o.putErr
	o.mu.Unlock()
	if err != nil {
		return ports.ObjectInfo{}, err
	}
	if size >= 0 {
		r = io.LimitReader(r, size)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return ports.ObjectInfo{}, err
	}
	sum := sha256.Sum256(b)
	o.mu.Lock()
	defer o.mu.Unlock()
	o.objects[key] = b
	return ports.ObjectInfo{Key: key, SizeBytes: int64(len(b)), SHA256: hex.EncodeToString(sum[:])}, nil
}

func (o *fakeObjects) Stat(_ context.Context, key string) (ports.ObjectInfo, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	b, ok := o.objects[key]
	if !ok {
		return ports.ObjectInfo{}, errs.E(errs.NotFound, errs.CodeNotFound, "object not found")
	}
	sum := sha256.Sum256(b)
	return ports.ObjectInfo{Key: key, SizeBytes: int64(len(b)), SHA256: hex.EncodeToString(sum[:])}, nil
}

func (o *fakeObjects) Delete(_ context.Context, key string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.deletes = append(o.deletes, key)
	if o.deleteErr != nil {
		return o.deleteErr
	}
	delete(o.objects, key)
	return nil
}

func (o *fakeObjects) DownloadURL(_ context.Context, key, fileName string, ttl time.Duration) (string, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.linkErr != nil {
		return "", o.linkErr
	}
	if _, ok := o.objects[key]; !ok {
		return "", errs.E(errs.NotFound, errs.CodeNotFound, "object not found")
	}
	o.links = append(o.links, fakeLink{Key: key, FileName: fileName, TTL: ttl})
	return "mem://" + key + "?exp=" + strconv.FormatInt(o.clock.Now().Add(ttl).Unix(), 10), nil
}

// put stores an object directly (an upload done "elsewhere").
func (o *fakeObjects) put(key string, data []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.objects[key] = bytes.Clone(data)
}

func (o *fakeObjects) has(key string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	_, ok := o.objects[key]
	return ok
}

func (o *fakeObjects) get(key string) []byte {
	o.mu.Lock()
	defer o.mu.Unlock()
	return bytes.Clone(o.objects[key])
}

func (o *fakeObjects) deleted() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.deletes...)
}

func (o *fakeObjects) linkCalls() []fakeLink {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]fakeLink(nil), o.links...)
}

// ---- processes ----

// revocationStart is one StartRevocation call.
type revocationStart struct {
	OrderID, Status, Reason string
}

// fakeProcesses records every start; the err fields make the calls fail (nothing is recorded then).
type fakeProcesses struct {
	mu           sync.Mutex
	emails       []ports.EmailMessage
	fulfilments  []string
	revocations  []revocationStart
	emailErr     error
	fulfilErr    error
	revocationEr error
}

var _ ports.Processes = (*fakeProcesses)(nil)

func (p *fakeProcesses) SendEmail(_ context.Context, m ports.EmailMessage) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.emailErr != nil {
		return p.emailErr
	}
	p.emails = append(p.emails, m)
	return nil
}

func (p *fakeProcesses) StartFulfillment(_ context.Context, orderID string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fulfilErr != nil {
		return p.fulfilErr
	}
	p.fulfilments = append(p.fulfilments, orderID)
	return nil
}

func (p *fakeProcesses) StartRevocation(_ context.Context, orderID, status, reason string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.revocationEr != nil {
		return p.revocationEr
	}
	p.revocations = append(p.revocations, revocationStart{OrderID: orderID, Status: status, Reason: reason})
	return nil
}

func (p *fakeProcesses) sentEmails() []ports.EmailMessage {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]ports.EmailMessage(nil), p.emails...)
}

func (p *fakeProcesses) fulfilmentStarts() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.fulfilments...)
}

func (p *fakeProcesses) revocationStarts() []revocationStart {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]revocationStart(nil), p.revocations...)
}

// ---- payments ----

// refundCall is one Refund call.
type refundCall struct {
	PaymentRef, Reason string
}

// fakePayments records checkouts and refunds. CreateCheckout is idempotent on OrderID like Stripe's
// idempotency key: a retry returns the first session. The err fields make the calls fail.
type fakePayments struct {
	clock ports.Clock

	mu          sync.Mutex
	checkouts   []ports.CheckoutRequest
	sessions    map[string]ports.CheckoutSession // by order id
	refunds     []refundCall
	checkoutErr error
	refundErr   error
}

var _ ports.Payments = (*fakePayments)(nil)

func (p *fakePayments) CreateCheckout(_ context.Context, req ports.CheckoutRequest) (ports.CheckoutSession, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.checkouts = append(p.checkouts, req)
	if p.checkoutErr != nil {
		return ports.CheckoutSession{}, p.checkoutErr
	}
	if s, ok := p.sessions[req.OrderID]; ok {
		return s, nil
	}
	id := "cs_test_" + strconv.Itoa(len(p.sessions)+1)
	s := ports.CheckoutSession{ID: id, URL: "https://checkout.stripe.test/pay/" + id, ExpiresAt: p.clock.Now().Add(24 * time.Hour).UTC()}
	p.sessions[req.OrderID] = s
	return s, nil
}

func (p *fakePayments) Refund(_ context.Context, paymentRef, reason string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.refundErr != nil {
		return p.refundErr
	}
	p.refunds = append(p.refunds, refundCall{PaymentRef: paymentRef, Reason: reason})
	return nil
}

func (p *fakePayments) checkoutCalls() []ports.CheckoutRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]ports.CheckoutRequest(nil), p.checkouts...)
}

func (p *fakePayments) refundCalls() []refundCall {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]refundCall(nil), p.refunds...)
}

// ---- the harness ----

// harnessStart is the fake clock's starting time.
var harnessStart = time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)

// harnessSecret keys the order access tokens in tests.
var harnessSecret = []byte("0123456789abcdef0123456789abcdef")

type harness struct {
	t       *testing.T
	ctx     context.Context
	clock   *portstest.FakeClock
	store   *portstest.MemStore
	lic     *fakeLicensing
	objects *fakeObjects
	procs   *fakeProcesses
	pay     *fakePayments
	mails   *portstest.EmailRenderer
	deps    Deps
	svc     *Service
}

// newHarness builds the service. mods may change the dependencies before the service is built
// (d.Payments = nil for a server without a payment provider, another Config…).
func newHarness(t *testing.T, mods ...func(*Deps)) *harness {
	t.Helper()
	clock := portstest.NewFakeClock(harnessStart)
	store := portstest.NewMemStore(portstest.WithClock(clock))
	lic := &fakeLicensing{clock: clock, products: store.Products(), licenses: store.Licenses()}
	objects := &fakeObjects{clock: clock, objects: map[string][]byte{}}
	procs := &fakeProcesses{}
	pay := &fakePayments{clock: clock, sessions: map[string]ports.CheckoutSession{}}
	mails := portstest.NewEmailRenderer()
	d := Deps{
		Clock: clock, Tx: store.Tx(),
		Catalog: store.Catalog(), Orders: store.Orders(), Coupons: store.Coupons(),
		Entitlements: store.Entitlements(), Events: store.PaymentEvents(), Downloads: store.Downloads(),
		Licensing: lic, Objects: objects, Payments: pay, Processes: procs, Emails: mails,
		Config: Config{
			PublicURL:     "http://127.0.0.1:8080",
			VendorName:    "Acme Audio",
			OperatorEmail: "ops@acme.example",
			AccessSecret:  harnessSecret,
			DownloadTTL:   time.Hour,
			SuccessURL:    "http://127.0.0.1:8080/thanks?order={ORDER_ID}",
			CancelURL:     "http://127.0.0.1:8080/cancelled?order={ORDER_ID}",
		},
	}
	for _, m := range mods {
		m(&d)
	}
	return &harness{t: t, ctx: context.Background(), clock: clock, store: store, lic: lic, objects: objects,
		procs: procs, pay: pay, mails: mails, deps: d, svc: New(d)}
}

// ---- helpers shared by the test files ----

func boolp(v bool) *bool { return &v }

// wantCode fails unless err is a domain error with this code and kind.
func wantCode(t *testing.T, err error, code string, kind errs.Kind) {
	t.Helper()
	if err == nil {
		t.Fatalf("want %s (%s), got success", code, kind)
	}
	if errs.CodeOf(err) != code || errs.KindOf(err) != kind {
		t.Fatalf("want %s (%s), got %s (%s): %v", code, kind, errs.CodeOf(err), errs.KindOf(err), err)
	}
}

// mustProduct creates a product: a plugin at 49.00 EUR unless mod changes the input.
func (h *harness) mustProduct(slug string, mod func(*ports.ProductInput)) catalog.Product {
	h.t.Helper()
	in := ports.ProductInput{Slug: slug, Name: "Product " + slug, Type: "plugin", Currency: "EUR", PriceCents: 4900}
	if mod != nil {
		mod(&in)
	}
	p, err := h.svc.CreateProduct(h.ctx, in)
	if err != nil {
		h.t.Fatalf("CreateProduct(%s): %v", slug, err)
	}
	return p
}

// mustVersion creates a published version of platform with an uploaded asset named
// <slug>-<version>-<platform>.zip.
func (h *harness) mustVersion(slug, version, platform string) catalog.Version {
	h.t.Helper()
	v, err := h.svc.CreateVersion(h.ctx, slug, ports.VersionInput{Version: version, Platform: platform})
	if err != nil {
		h.t.Fatalf("CreateVersion(%s %s %s): %v", slug, version, platform, err)
	}
	data := []byte("asset of " + slug + " " + version + " " + platform)
	v, err = h.svc.UploadAsset(h.ctx, slug, v.ID, slug+"-"+version+"-"+platform+".zip", bytes.NewReader(data), int64(len(data)))
	if err != nil {
		h.t.Fatalf("UploadAsset(%s %s %s): %v", slug, version, platform, err)
	}
	v, err = h.svc.UpdateVersion(h.ctx, slug, v.ID, ports.VersionInput{Published: boolp(true)})
	if err != nil {
		h.t.Fatalf("publishing %s %s %s: %v", slug, version, platform, err)
	}
	return v
}

// mustCoupon creates a coupon.
func (h *harness) mustCoupon(in ports.CouponInput) ports.CouponView {
	h.t.Helper()
	c, err := h.svc.CreateCoupon(h.ctx, in)
	if err != nil {
		h.t.Fatalf("CreateCoupon(%s): %v", in.Code, err)
	}
	return c
}

// The owner calls are not used by the commerce tests.
func (f *fakeLicensing) OwnerLicenses(context.Context, string) ([]ports.OwnerLicenseView, error) {
	return nil, errs.Internalf("not used")
}
func (f *fakeLicensing) OwnerLicense(context.Context, string, string) (ports.OwnerLicenseView, error) {
	return ports.OwnerLicenseView{}, errs.Internalf("not used")
}
func (f *fakeLicensing) RevealKey(context.Context, string, string) (string, error) {
	return "", errs.Internalf("not used")
}
func (f *fakeLicensing) RenameDevice(context.Context, string, string, string) (ports.ActivationView, error) {
	return ports.ActivationView{}, errs.Internalf("not used")
}
func (f *fakeLicensing) RevokeDevice(context.Context, string, string) (ports.OwnerLicenseView, error) {
	return ports.OwnerLicenseView{}, errs.Internalf("not used")
}
func (f *fakeLicensing) OwnerReleaseSeat(context.Context, string, string) (ports.OwnerLicenseView, error) {
	return ports.OwnerLicenseView{}, errs.Internalf("not used")
}
func (f *fakeLicensing) OwnerDecideClaim(context.Context, string, string, bool) (ports.ClaimView, error) {
	return ports.ClaimView{}, errs.Internalf("not used")
}
func (f *fakeLicensing) ReissueKey(context.Context, string, string) (ports.OwnerLicenseView, string, error) {
	return ports.OwnerLicenseView{}, "", errs.Internalf("not used")
}
func (f *fakeLicensing) RecoverLicenses(context.Context, string) error {
	return errs.Internalf("not used")
}
func (f *fakeLicensing) SendExpiryNotices(context.Context, time.Time) (int, error) {
	return 0, errs.Internalf("not used")
}
