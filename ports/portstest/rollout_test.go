package portstest_test

import (
	"testing"

	"github.com/samplero/samplero/ports"
	"github.com/samplero/samplero/ports/portstest"
)

func TestMemRolloutEventsContract(t *testing.T) {
	portstest.RunRolloutEventsContract(t, func(t *testing.T) (ports.RolloutEventRepo, portstest.Stores) {
		s := portstest.NewMemStore()
		return s.RolloutEvents(), s.Stores()
	})
}
