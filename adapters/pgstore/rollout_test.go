package pgstore_test

import (
	"testing"

	"github.com/samplero/samplero/ports"
	"github.com/samplero/samplero/ports/portstest"
)

func TestRolloutEventsContract(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			portstest.RunRolloutEventsContract(t, func(t *testing.T) (ports.RolloutEventRepo, portstest.Stores) {
				s := b.open(t)
				return s.RolloutEvents(), stores(s)
			})
		})
	}
}
