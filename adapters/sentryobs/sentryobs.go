// Package sentryobs reports panics and server errors to Sentry when SENTRY_DSN is configured. Every
// event passes through Scrub first: license keys, request signatures, leases, certificates,
// Authorization and cookies never leave the process.
package sentryobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/getsentry/sentry-go"
)

// Options configure the reporter.
type Options struct {
	DSN         string // empty: reporting is off and every method is a no-op
	Environment string
	Release     string
	// Transport replaces the HTTP transport (tests).
	Transport sentry.Transport
}

// Reporter sends events through its own hub (never sentry's global one). The zero value and nil
// are valid, disabled reporters.
type Reporter struct {
	hub *sentry.Hub
}

// New builds a reporter. With an empty DSN it returns a disabled one.
func New(o Options) (*Reporter, error) {
	if o.DSN == "" {
		return &Reporter{}, nil
	}
	c, err := sentry.NewClient(sentry.ClientOptions{
		Dsn:            o.DSN,
		Environment:    o.Environment,
		Release:        o.Release,
		Transport:      o.Transport,
		SendDefaultPII: false,
		BeforeSend: func(e *sentry.Event, _ *sentry.EventHint) *sentry.Event {
			return Scrub(e)
		},
	})
	if err != nil {
		// The DSN is a credential: do not echo it.
		return nil, errors.New("sentryobs: SENTRY_DSN is not a valid DSN")
	}
	return &Reporter{hub: sentry.NewHub(c, sentry.NewScope())}, nil
}

// Enabled reports whether events are sent anywhere.
func (r *Reporter) Enabled() bool { return r != nil && r.hub != nil }

// CaptureError reports err with tags (request id, route, …).
func (r *Reporter) CaptureError(err error, tags map[string]string) {
	if !r.Enabled() || err == nil {
		return
	}
	r.hub.WithScope(func(s *sentry.Scope) {
		s.SetTags(tags)
		r.hub.CaptureException(err)
	})
}

// Recover reports a recovered panic value. Call it from a deferred function that recovered.
func (r *Reporter) Recover(ctx context.Context, recovered any) {
	if !r.Enabled() || recovered == nil {
		return
	}
	r.hub.RecoverWithContext(ctx, recovered)
}

// Flush waits up to timeout for queued events to be sent (at shutdown).
func (r *Reporter) Flush(timeout time.Duration) {
	if r.Enabled() {
		r.hub.Flush(timeout)
	}
}

// Handler wraps next so that every record at level Error or above (how the HTTP error handler
// logs a 5xx and the recover middleware logs a panic) is also reported. Attributes become the
// event's "log" context, scrubbed like everything else.
func (r *Reporter) Handler(next slog.Handler) slog.Handler {
	if !r.Enabled() {
		return next
	}
	return &handler{next: next, r: r}
}

type handler struct {
	next  slog.Handler
	r     *Reporter
	attrs []slog.Attr
}

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *handler) Handle(ctx context.Context, rec slog.Record) error {
	if rec.Level >= slog.LevelError {
		extra := map[string]any{}
		var cause error
		add := func(a slog.Attr) bool {
			if err, ok := a.Value.Any().(error); ok && cause == nil {
				cause = err
			}
			extra[a.Key] = a.Value.String()
			return true
		}
		for _, a := range h.attrs {
			add(a)
		}
		rec.Attrs(add)
		ev := &sentry.Event{Level: sentry.LevelError, Message: rec.Message, Contexts: map[string]sentry.Context{"log": extra}, Logger: "slog"}
		if cause != nil {
			ev.Exception = []sentry.Exception{{Type: fmt.Sprintf("%T", cause), Value: cause.Error()}}
		}
		h.r.hub.CaptureEvent(ev)
	}
	return h.next.Handle(ctx, rec)
}

func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &handler{next: h.next.WithAttrs(attrs), r: h.r, attrs: append(append([]slog.Attr(nil), h.attrs...), attrs...)}
}

func (h *handler) WithGroup(name string) slog.Handler {
	return &handler{next: h.next.WithGroup(name), r: h.r, attrs: h.attrs}
}
