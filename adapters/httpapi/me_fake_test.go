package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/samplero/samplero/core/commerce/order"
	"github.com/samplero/samplero/core/errs"
	"github.com/samplero/samplero/core/licensing/license"
	"github.com/samplero/samplero/ports"
)

// --- the owner calls of the licensing double ---

// Codes the owner calls answer (ports.Licensing documents them; the licensing core defines its own).
const (
	codeActivationNotFound = "ACTIVATION_NOT_FOUND"
	codeSeatNotHeld        = "SEAT_NOT_HELD"
	codeNotActive          = "ACTIVATION_NOT_ACTIVE"
)

// ownerLicense is a license in the owner store: its owner, its whole key and its owner view.
type ownerLicense struct {
	owner string
	key   string
	view  ports.OwnerLicenseView
}

// ownerStore gives the fake licensing owner calls that scope by owner the way the port's contract
// says: another owner's license, device or claim is NOT_FOUND with the code of a missing one.
type ownerStore struct {
	mu        sync.Mutex
	licenses  []*ownerLicense
	errs      map[string]error // method → the error it answers
	recovered []string         // e-mails RecoverLicenses was called with
	reissued  int
}

// ownerStores attaches an owner store to each fakeLicensing (harness_test.go defines the fake's
// fields; this file adds the owner calls without touching it).
var ownerStores sync.Map // *fakeLicensing → *ownerStore

func (f *fakeLicensing) owner() *ownerStore {
	if v, ok := ownerStores.Load(f); ok {
		return v.(*ownerStore)
	}
	v, _ := ownerStores.LoadOrStore(f, &ownerStore{errs: map[string]error{}})
	return v.(*ownerStore)
}

func canonicalKey(k string) string {
	return strings.ToUpper(strings.ReplaceAll(strings.TrimSpace(k), "-", ""))
}

func maskKey(k string) string {
	parts := strings.Split(k, "-")
	if len(parts) != 5 {
		return "•••••"
	}
	return parts[0] + "-" + parts[1] + "-•••••-•••••-" + parts[4]
}

// add puts a license of owner into the store.
func (o *ownerStore) add(owner, id, key, product string, max int, devices []ports.OwnerDevice, claims []ports.ClaimView) {
	o.mu.Lock()
	defer o.mu.Unlock()
	seats := 0
	for i := range devices {
		devices[i].LicenseID = id
		if devices[i].Status == "active" || devices[i].CanReleaseSeat {
			seats++
		}
	}
	for i := range claims {
		claims[i].LicenseID = id
	}
	o.licenses = append(o.licenses, &ownerLicense{owner: owner, key: key, view: ports.OwnerLicenseView{
		ID: id, MaskedKey: maskKey(key), Status: "active", Product: product, MaxActivations: max, SeatsUsed: seats,
		CreatedAt: t0, Devices: devices, Claims: claims,
	}})
}

func (o *ownerStore) fail(method string, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.errs[method] = err
}

// copyView copies the slices, so that an answer is not changed by a later call.
func copyView(v ports.OwnerLicenseView) ports.OwnerLicenseView {
	v.Devices = append([]ports.OwnerDevice(nil), v.Devices...)
	v.Claims = append([]ports.ClaimView(nil), v.Claims...)
	return v
}

// begin records the call with the licensing double and returns the error set for it.
func (f *fakeLicensing) begin(method string) (*ownerStore, error) {
	if err := f.record(method); err != nil {
		return nil, err
	}
	o := f.owner()
	o.mu.Lock()
	return o, o.errs[method]
}

func licenseNotFound() error {
	return errs.E(errs.NotFound, license.CodeLicenseNotFound, "no such license")
}

// license finds a license of owner by id or key (caller holds mu).
func (o *ownerStore) license(owner, ref string) (*ownerLicense, error) {
	for _, l := range o.licenses {
		if l.view.ID == ref || canonicalKey(l.key) == canonicalKey(ref) {
			if l.owner != owner {
				return nil, licenseNotFound()
			}
			return l, nil
		}
	}
	return nil, licenseNotFound()
}

// device finds a device of owner (caller holds mu).
func (o *ownerStore) device(owner, id string) (*ownerLicense, *ports.OwnerDevice, error) {
	for _, l := range o.licenses {
		for i := range l.view.Devices {
			if l.view.Devices[i].ID == id {
				if l.owner != owner {
					break
				}
				return l, &l.view.Devices[i], nil
			}
		}
	}
	return nil, nil, errs.E(errs.NotFound, codeActivationNotFound, "no such device")
}

func (f *fakeLicensing) OwnerLicenses(_ context.Context, owner string) ([]ports.OwnerLicenseView, error) {
	o, err := f.begin("OwnerLicenses")
	if o == nil {
		return nil, err
	}
	defer o.mu.Unlock()
	if err != nil {
		return nil, err
	}
	var out []ports.OwnerLicenseView
	for _, l := range o.licenses {
		if l.owner == owner {
			out = append(out, copyView(l.view))
		}
	}
	return out, nil
}

func (f *fakeLicensing) OwnerLicense(_ context.Context, owner, ref string) (ports.OwnerLicenseView, error) {
	o, err := f.begin("OwnerLicense")
	if o == nil {
		return ports.OwnerLicenseView{}, err
	}
	defer o.mu.Unlock()
	if err != nil {
		return ports.OwnerLicenseView{}, err
	}
	l, err := o.license(owner, ref)
	if err != nil {
		return ports.OwnerLicenseView{}, err
	}
	return copyView(l.view), nil
}

func (f *fakeLicensing) RevealKey(_ context.Context, owner, id string) (string, error) {
	o, err := f.begin("RevealKey")
	if o == nil {
		return "", err
	}
	defer o.mu.Unlock()
	if err != nil {
		return "", err
	}
	l, err := o.license(owner, id)
	if err != nil {
		return "", err
	}
	return l.key, nil
}

func (f *fakeLicensing) RenameDevice(_ context.Context, owner, id, name string) (ports.ActivationView, error) {
	o, err := f.begin("RenameDevice")
	if o == nil {
		return ports.ActivationView{}, err
	}
	defer o.mu.Unlock()
	if err != nil {
		return ports.ActivationView{}, err
	}
	_, d, err := o.device(owner, id)
	if err != nil {
		return ports.ActivationView{}, err
	}
	d.DeviceName = name
	return d.ActivationView, nil
}

func (f *fakeLicensing) RevokeDevice(_ context.Context, owner, id string) (ports.OwnerLicenseView, error) {
	o, err := f.begin("RevokeDevice")
	if o == nil {
		return ports.OwnerLicenseView{}, err
	}
	defer o.mu.Unlock()
	if err != nil {
		return ports.OwnerLicenseView{}, err
	}
	l, d, err := o.device(owner, id)
	if err != nil {
		return ports.OwnerLicenseView{}, err
	}
	if d.Status != "active" {
		return ports.OwnerLicenseView{}, errs.E(errs.Conflict, codeNotActive, "the device is not active")
	}
	ended := t0
	d.Status, d.EndedAt = "revoked", &ended
	l.view.SeatsUsed--
	return copyView(l.view), nil
}

func (f *fakeLicensing) OwnerReleaseSeat(_ context.Context, owner, id string) (ports.OwnerLicenseView, error) {
	o, err := f.begin("OwnerReleaseSeat")
	if o == nil {
		return ports.OwnerLicenseView{}, err
	}
	defer o.mu.Unlock()
	if err != nil {
		return ports.OwnerLicenseView{}, err
	}
	l, d, err := o.device(owner, id)
	if err != nil {
		return ports.OwnerLicenseView{}, err
	}
	if !d.CanReleaseSeat {
		return ports.OwnerLicenseView{}, errs.E(errs.Conflict, codeSeatNotHeld, "the device holds no seat")
	}
	d.CanReleaseSeat, d.SeatHeldUntil = false, nil
	l.view.SeatsUsed--
	return copyView(l.view), nil
}

func (f *fakeLicensing) OwnerDecideClaim(_ context.Context, owner, id string, approve bool) (ports.ClaimView, error) {
	o, err := f.begin("OwnerDecideClaim")
	if o == nil {
		return ports.ClaimView{}, err
	}
	defer o.mu.Unlock()
	if err != nil {
		return ports.ClaimView{}, err
	}
	for _, l := range o.licenses {
		for i, cl := range l.view.Claims {
			if cl.ID != id || l.owner != owner {
				continue
			}
			cl.Status = "rejected"
			if approve {
				cl.Status = "approved"
			}
			l.view.Claims = append(l.view.Claims[:i:i], l.view.Claims[i+1:]...)
			return cl, nil
		}
	}
	return ports.ClaimView{}, errs.E(errs.NotFound, license.CodeClaimNotFound, "no such claim")
}

func (f *fakeLicensing) ReissueKey(_ context.Context, owner, id string) (ports.OwnerLicenseView, string, error) {
	o, err := f.begin("ReissueKey")
	if o == nil {
		return ports.OwnerLicenseView{}, "", err
	}
	defer o.mu.Unlock()
	if err != nil {
		return ports.OwnerLicenseView{}, "", err
	}
	l, err := o.license(owner, id)
	if err != nil {
		return ports.OwnerLicenseView{}, "", err
	}
	o.reissued++
	l.key = fmt.Sprintf("VST-NEWKY-%05d-ZZZZZ-QQQQ%d", o.reissued, o.reissued%10)
	l.view.MaskedKey = maskKey(l.key)
	return copyView(l.view), l.key, nil
}

func (f *fakeLicensing) RecoverLicenses(_ context.Context, email string) error {
	o, err := f.begin("RecoverLicenses")
	if o == nil {
		return err
	}
	defer o.mu.Unlock()
	if err != nil {
		return err
	}
	o.recovered = append(o.recovered, email)
	return nil
}

func (f *fakeLicensing) SendExpiryNotices(context.Context, time.Time) (int, error) {
	o, err := f.begin("SendExpiryNotices")
	if o == nil {
		return 0, err
	}
	defer o.mu.Unlock()
	return 0, err
}

// --- the customers double ---

type fakeSession struct {
	s       ports.Session
	account string
}

// fakeCustomers is a ports.Customers that keeps accounts, single-use links and sessions in memory,
// with the port's answers: the same nil for known and unknown addresses, single-use links,
// INVALID_CREDENTIALS for any failed password sign-in, SESSION_INVALID for dead sessions.
type fakeCustomers struct {
	mu        sync.Mutex
	clock     ports.Clock
	accounts  map[string]*ports.Account // by e-mail
	links     map[string]string         // token → e-mail
	sessions  map[string]*fakeSession   // token → session
	passwords map[string]string         // account id → password
	linkErr   error                     // RequestSignInLink answers this
	requested []string                  // e-mails links were asked for
	metas     []ports.SessionMeta
	signedOut []string // tokens
	n         int
}

var _ ports.Customers = (*fakeCustomers)(nil)

const sessionTTL = 30 * 24 * time.Hour

func newFakeCustomers(clock ports.Clock) *fakeCustomers {
	return &fakeCustomers{clock: clock, accounts: map[string]*ports.Account{}, links: map[string]string{},
		sessions: map[string]*fakeSession{}, passwords: map[string]string{}}
}

func randToken(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// account returns (creating) the account of email (caller holds mu).
func (f *fakeCustomers) account(email string) *ports.Account {
	if a, ok := f.accounts[email]; ok {
		return a
	}
	f.n++
	now := f.clock.Now()
	a := &ports.Account{ID: fmt.Sprintf("cus_%d", f.n), Email: email, EmailVerifiedAt: now, CreatedAt: now, UpdatedAt: now}
	f.accounts[email] = a
	return a
}

// grant starts a session (caller holds mu).
func (f *fakeCustomers) grant(a *ports.Account, kind ports.SessionKind, meta ports.SessionMeta) ports.SessionGrant {
	f.n++
	now := f.clock.Now()
	tok := randToken("sst_")
	s := ports.Session{ID: fmt.Sprintf("ses_%d", f.n), AccountID: a.ID, Kind: kind, CreatedAt: now, ExpiresAt: now.Add(sessionTTL),
		LastSeenAt: now, UserAgent: meta.UserAgent, Addr: meta.Addr}
	f.sessions[tok] = &fakeSession{s: s, account: a.Email}
	f.metas = append(f.metas, meta)
	return ports.SessionGrant{Token: tok, Session: s, Account: *a, ExpiresAt: s.ExpiresAt}
}

// signIn gives a test a session of email without a link.
func (f *fakeCustomers) signIn(email string, kind ports.SessionKind) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.grant(f.account(email), kind, ports.SessionMeta{}).Token
}

// link issues a sign-in link token for email, as the e-mail would carry it.
func (f *fakeCustomers) link(email string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	tok := randToken("sil_")
	f.links[tok] = email
	return tok
}

func (f *fakeCustomers) RequestSignInLink(_ context.Context, email, addr string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.linkErr != nil {
		return f.linkErr
	}
	f.requested = append(f.requested, email+"|"+addr)
	f.links[randToken("sil_")] = email
	return nil
}

func (f *fakeCustomers) SignInWithLink(_ context.Context, token string, kind ports.SessionKind, meta ports.SessionMeta) (ports.SessionGrant, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	email, ok := f.links[token]
	if !ok {
		return ports.SessionGrant{}, errs.E(errs.Unauthenticated, "SIGN_IN_LINK_INVALID", "the link is not valid")
	}
	delete(f.links, token) // single use
	return f.grant(f.account(email), kind, meta), nil
}

func (f *fakeCustomers) SignInWithPassword(_ context.Context, email, password string, kind ports.SessionKind, meta ports.SessionMeta) (ports.SessionGrant, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, ok := f.accounts[email]
	if !ok || f.passwords[a.ID] == "" || f.passwords[a.ID] != password {
		return ports.SessionGrant{}, errs.E(errs.Unauthenticated, "INVALID_CREDENTIALS", "wrong e-mail or password")
	}
	return f.grant(a, kind, meta), nil
}

func (f *fakeCustomers) Authenticate(_ context.Context, token string) (ports.CustomerIdentity, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.sessions[token]
	if !ok || s.s.RevokedAt != nil || !f.clock.Now().Before(s.s.ExpiresAt) {
		return ports.CustomerIdentity{}, errs.E(errs.Unauthenticated, codeSessionInvalid, "no such session")
	}
	return ports.CustomerIdentity{AccountID: s.s.AccountID, Email: s.account, SessionID: s.s.ID}, nil
}

func (f *fakeCustomers) SetPassword(_ context.Context, accountID, password string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len([]rune(password)) < 10 {
		return errs.E(errs.Invalid, "PASSWORD_TOO_SHORT", "the password must have at least 10 characters")
	}
	for _, a := range f.accounts {
		if a.ID == accountID {
			f.passwords[accountID] = password
			a.PasswordHash = "$argon2id$fake"
			return nil
		}
	}
	return errs.E(errs.NotFound, errs.CodeNotFound, "no such account")
}

func (f *fakeCustomers) Account(_ context.Context, accountID string) (ports.Account, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, a := range f.accounts {
		if a.ID == accountID {
			return *a, nil
		}
	}
	return ports.Account{}, errs.E(errs.NotFound, errs.CodeNotFound, "no such account")
}

func (f *fakeCustomers) SignOut(_ context.Context, token string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s, ok := f.sessions[token]; ok && s.s.RevokedAt == nil {
		now := f.clock.Now()
		s.s.RevokedAt = &now
	}
	f.signedOut = append(f.signedOut, token)
	return nil
}

func (f *fakeCustomers) SignOutEverywhere(_ context.Context, accountID string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	now := f.clock.Now()
	for _, s := range f.sessions {
		if s.s.AccountID == accountID && s.s.RevokedAt == nil {
			s.s.RevokedAt = &now
			n++
		}
	}
	return n, nil
}

// --- a commerce double whose orders belong to different customers ---

// ownedOrders is the commerce double with several orders: GetOrder finds them by id and ListOrders
// filters by e-mail, as the real service does (the adapter must still check the owner itself).
type ownedOrders struct {
	*fakeCommerce
	orders       []ports.OrderView // newest first
	ignoreFilter bool              // ListOrders answers every order (a broken store)
}

func (o *ownedOrders) GetOrder(_ context.Context, id string) (ports.OrderView, error) {
	if err := o.call("GetOrder", id); err != nil {
		return ports.OrderView{}, err
	}
	for _, v := range o.orders {
		if v.Order.ID == id {
			return v, nil
		}
	}
	return ports.OrderView{}, errs.E(errs.NotFound, order.CodeOrderNotFound, "no such order")
}

// ListOrders pages through the orders of the filter's e-mail, one order a page when the filter
// asks for a limit of 1 (so tests see the cursor walk).
func (o *ownedOrders) ListOrders(_ context.Context, f ports.OrderFilter) ([]ports.OrderView, string, error) {
	if err := o.call("ListOrders", f); err != nil {
		return nil, "", err
	}
	var mine []ports.OrderView
	for _, v := range o.orders {
		if f.CustomerEmail == "" || v.Order.CustomerEmail == f.CustomerEmail || o.ignoreFilter {
			v.Entitlements = nil
			mine = append(mine, v)
		}
	}
	start := 0
	if f.Cursor != "" {
		fmt.Sscanf(f.Cursor, "at-%d", &start)
	}
	if start > len(mine) {
		start = len(mine)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 50
	}
	end := min(start+limit, len(mine))
	next := ""
	if end < len(mine) {
		next = fmt.Sprintf("at-%d", end)
	}
	return mine[start:end], next, nil
}

// --- the harness of the customer API ---

const (
	alice     = "alice@example.com"
	bob       = "bob@example.com"
	publicURL = "https://shop.example.test"
)

type meHarness struct {
	*commerceHarness
	cus    *fakeCustomers
	owner  *ownerStore
	orders *ownedOrders
}

// newMeHarness is the app with Customers, the owner store and the commerce double with orders of
// alice and bob.
func newMeHarness(t testing.TB, mutate ...func(*Deps)) *meHarness {
	t.Helper()
	h := &meHarness{}
	setup := func(d *Deps) {
		h.cus = newFakeCustomers(d.Clock)
		d.Customers = h.cus
		d.Config.PublicURL = publicURL
		h.orders = &ownedOrders{fakeCommerce: d.Commerce.(*fakeCommerce)}
		d.Commerce = h.orders
	}
	h.commerceHarness = newCommerceHarness(t, append([]func(*Deps){setup}, mutate...)...)
	h.owner = h.lic.owner()

	// alice: one license with an active device, a device whose seat is held, and a pending claim.
	hb := t0.Add(-time.Hour)
	held := t0.Add(10 * 24 * time.Hour)
	h.owner.add(alice, "lic_a", "VST-AAAAA-BBBBB-CCCCC-DDDD1", "synth", 3, []ports.OwnerDevice{
		{ActivationView: ports.ActivationView{ID: "act_a1", Status: "active", DeviceFingerprint: "fp-alice-1", DeviceName: "Studio Mac",
			Platform: "mac", PluginVersion: "1.2.3", LastHeartbeatAt: &hb, CertificateSerial: "A1", CreatedAt: t0}, TrustLevel: 4},
		{ActivationView: ports.ActivationView{ID: "act_a2", Status: "deactivated", DeviceFingerprint: "fp-alice-2", Platform: "win",
			CreatedAt: t0}, SeatHeldUntil: &held, EndedAt: &hb, CanReleaseSeat: true},
	}, []ports.ClaimView{{ID: "clm_a", Status: "pending", DeviceName: "Laptop", Platform: "mac", Fingerprint: "fp-alice-3",
		RequestAddr: "203.0.113.7", CreatedAt: t0, ExpiresAt: t0.Add(15 * time.Minute)}})
	// bob: one license with a device and a claim; every test tries to reach them as alice.
	h.owner.add(bob, "lic_b", "VST-BBBBB-CCCCC-DDDDD-EEEE2", "drums", 2, []ports.OwnerDevice{
		{ActivationView: ports.ActivationView{ID: "act_b1", Status: "active", DeviceFingerprint: "fp-bob-1", Platform: "win", CreatedAt: t0}},
	}, []ports.ClaimView{{ID: "clm_b", Status: "pending", Platform: "win", Fingerprint: "fp-bob-2", CreatedAt: t0, ExpiresAt: t0.Add(15 * time.Minute)}})

	// Orders, newest first: alice's fulfilled order, bob's order, alice's refunded order.
	base := h.orders.view
	mk := func(id string, number int64, email string, status order.Status, ents ...order.Entitlement) ports.OrderView {
		v := base
		v.Order.ID, v.Order.Number, v.Order.CustomerEmail, v.Order.Status = id, number, email, status
		v.Reference = order.Reference(number)
		v.Entitlements = ents
		return v
	}
	unlocked := tFulfilled
	h.orders.orders = []ports.OrderView{
		mk("ord_a1", 3, alice, order.StatusFulfilled,
			order.Entitlement{ID: "ent_1", OrderID: "ord_a1", Product: "synth", CustomerEmail: alice, LicenseID: "lic_a", Status: order.EntitlementActive, UnlockedAt: &unlocked},
			order.Entitlement{ID: "ent_2", OrderID: "ord_a1", Product: "kicks", ViaBundle: "starter", CustomerEmail: alice, Status: order.EntitlementActive, UnlockedAt: &unlocked},
			order.Entitlement{ID: "ent_3", OrderID: "ord_a1", Product: "locked", CustomerEmail: alice, Status: order.EntitlementActive}),
		mk("ord_b1", 2, bob, order.StatusFulfilled,
			order.Entitlement{ID: "ent_4", OrderID: "ord_b1", Product: "drums", CustomerEmail: bob, Status: order.EntitlementActive, UnlockedAt: &unlocked}),
		mk("ord_a0", 1, alice, order.StatusRefunded,
			order.Entitlement{ID: "ent_5", OrderID: "ord_a0", Product: "pads", CustomerEmail: alice, Status: order.EntitlementRevoked, UnlockedAt: &unlocked}),
	}
	return h
}

// licCalls counts the calls of method that reached the licensing double.
func (h *meHarness) licCalls(method string) int {
	h.lic.mu.Lock()
	defer h.lic.mu.Unlock()
	n := 0
	for _, c := range h.lic.calls {
		if c == method {
			n++
		}
	}
	return n
}

// req sends a request with a bearer token ("" sends none) and extra headers.
func (h *meHarness) req(token, method, path, body string, header map[string]string) response {
	h.t.Helper()
	hd := map[string]string{}
	for k, v := range header {
		hd[k] = v
	}
	if token != "" {
		hd["Authorization"] = "Bearer " + token
	}
	return h.call(method, path, body, hd)
}

// browser sends a request with the session cookie and the headers a same-origin page sends.
func (h *meHarness) browser(cookie, method, path, body string) response {
	h.t.Helper()
	return h.call(method, path, body, map[string]string{"Cookie": sessionCookie + "=" + cookie, "Origin": publicURL})
}

// raw sends a request built by the test.
func (h *meHarness) raw(req *http.Request) response {
	h.t.Helper()
	res, err := h.app.Test(req, -1)
	if err != nil {
		h.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return response{status: res.StatusCode, header: res.Header, body: b, path: req.URL.Path}
}

func newRequest(method, path, body string) *http.Request {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, r)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return req
}
