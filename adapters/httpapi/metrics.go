package httpapi

import (
	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the adapter's collectors, registered on the registry the composition root gives.
type metrics struct {
	registry      *prometheus.Registry
	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	validations   *prometheus.CounterVec
	activations   *prometheus.CounterVec
	seatsRefused  prometheus.Counter
	deviceRefused *prometheus.CounterVec
}

func newMetrics(reg *prometheus.Registry) (*metrics, error) {
	m := &metrics{
		registry: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "samplero_http_requests_total",
			Help: "HTTP requests by route pattern and status.",
		}, []string{"route", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "samplero_http_request_duration_seconds",
			Help:    "HTTP request latency by route pattern.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route"}),
		validations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "samplero_validations_total",
			Help: "Answered validations by result: the status returned (active, grace_period, revoked, …).",
		}, []string{"valid", "status"}),
		activations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "samplero_activations_total",
			Help: "Activate and bootstrap outcomes: created, existing, pending, or the error code.",
		}, []string{"endpoint", "result"}),
		seatsRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "samplero_seats_refused_total",
			Help: "Activations refused with ACTIVATION_LIMIT_EXCEEDED.",
		}),
		deviceRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "samplero_device_requests_refused_total",
			Help: "Device requests refused by the checks of PROTOCOL.md section 2, by code.",
		}, []string{"code"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.validations, m.activations, m.seatsRefused, m.deviceRefused} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (a *api) metricsHandler() fiber.Handler {
	return adaptor.HTTPHandler(promhttp.HandlerFor(a.metrics.registry, promhttp.HandlerOpts{}))
}
