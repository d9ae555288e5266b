package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
)

const (
	headerRequestID  = "X-Request-Id"
	localsRequestID  = "samplero.request_id"
	localsClientAddr = "samplero.client_addr"
	maxRequestIDLen  = 128
)

// edge is the outermost middleware: it assigns the request id, recovers panics, renders errors
// through errorHandler, counts the request and writes one access-log line. It logs the method, the
// path without its query (claim tokens travel in queries), the status and timings: never headers
// or bodies, so license keys, signatures and Authorization never reach a log.
func (a *api) edge(c *fiber.Ctx) (err error) {
	start := time.Now()
	id := strings.Clone(sanitizeRequestID(c.Get(headerRequestID)))
	if id == "" {
		id = newRequestID()
	}
	c.Locals(localsRequestID, id)
	c.Set(headerRequestID, id)

	func() {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("panic: %v\n%s", r, debug.Stack())
			}
		}()
		err = c.Next()
	}()
	if err != nil {
		_ = a.errorHandler(c, err)
		err = nil
	}

	status := c.Response().StatusCode()
	route := routeLabel(c)
	a.metrics.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
	a.metrics.duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
	}
	a.log.LogAttrs(c.UserContext(), level, "http request",
		slog.String("request_id", id),
		slog.String("method", c.Method()),
		slog.String("path", logPath(string(c.Request().URI().PathOriginal()))),
		slog.String("route", route),
		slog.Int("status", status),
		slog.String("client", a.clientAddr(c)),
		slog.Duration("duration", time.Since(start)))
	return nil
}

// logPath is the path as logged: the token of a download link (/v1/files/{token}) is a bearer
// credential for as long as the link lives, so it is cut.
func logPath(p string) string {
	const files = "/v1/files/"
	if i := strings.Index(p, files); i >= 0 && len(p) > i+len(files) {
		return p[:i+len(files)] + "[redacted]"
	}
	return p
}

// routeLabel is the matched route pattern, or "unmatched": raw paths would give metrics an unbounded
// number of label values.
func routeLabel(c *fiber.Ctx) string {
	r := c.Route()
	if r == nil || r.Path == "" || r.Path == "/" || len(r.Handlers) == 0 || r.Method == "USE" {
		return "unmatched"
	}
	return r.Path
}

// sanitizeRequestID keeps a caller's request id only when it is short and plain, so it is safe to
// echo and log.
func sanitizeRequestID(s string) string {
	if s == "" || len(s) > maxRequestIDLen {
		return ""
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '_' || ch == '.') {
			return ""
		}
	}
	return s
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}

func requestID(c *fiber.Ctx) string {
	if s, ok := c.Locals(localsRequestID).(string); ok {
		return s
	}
	return ""
}

// clientAddr is the address rate limits and claims see: the socket peer, unless that peer is a
// trusted proxy, in which case the right-most X-Forwarded-For entry that is not itself a trusted
// proxy (entries to its left could have been written by the client).
func (a *api) clientAddr(c *fiber.Ctx) string {
	if s, ok := c.Locals(localsClientAddr).(string); ok {
		return s
	}
	peer, _ := netip.AddrFromSlice(c.Context().RemoteIP())
	peer = peer.Unmap()
	addr := peer
	if a.trustedProxy(peer) {
		xff := c.Request().Header.PeekAll(fiber.HeaderXForwardedFor)
		var entries []string
		for _, v := range xff {
			for _, e := range strings.Split(string(v), ",") {
				entries = append(entries, strings.TrimSpace(e))
			}
		}
		for i := len(entries) - 1; i >= 0; i-- {
			ip, err := netip.ParseAddr(entries[i])
			if err != nil {
				break // a garbled entry: stop at the last address we can vouch for
			}
			ip = ip.Unmap()
			addr = ip
			if !a.trustedProxy(ip) {
				break
			}
		}
	}
	s := addr.String()
	c.Locals(localsClientAddr, s)
	return s
}

func (a *api) trustedProxy(ip netip.Addr) bool {
	if !ip.IsValid() {
		return false
	}
	for _, p := range a.cfg.TrustedProxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// healthz answers 200 whenever the process runs.
func (a *api) healthz(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"status": "ok"})
}

// readyz answers 200 when deps.Ready passes and 503 otherwise, without the cause (logged instead).
func (a *api) readyz(c *fiber.Ctx) error {
	if a.deps.Ready != nil {
		ctx, cancel := context.WithTimeout(c.UserContext(), 5*time.Second)
		defer cancel()
		if err := a.deps.Ready(ctx); err != nil {
			a.log.LogAttrs(c.UserContext(), slog.LevelWarn, "not ready", slog.String("error", err.Error()))
			c.Status(fiber.StatusServiceUnavailable)
			return c.JSON(fiber.Map{"status": "unavailable"})
		}
	}
	return c.JSON(fiber.Map{"status": "ready"})
}
