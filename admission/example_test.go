package admission_test

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/shadowlab/shadowlab/admission"
)

// A key's state lives in a store shared by threads (Envoy's shared data):
// read it, decide, and write it back with a compare-and-swap; on a
// mismatch, read again and decide again with the same arguments.
func ExampleDecide() {
	c := admission.Config{Limit: 2, Window: time.Second, MaxDelay: 2 * time.Second, Mode: admission.ModeDelay}
	if err := c.Validate(); err != nil {
		panic(err)
	}
	rnd := rand.NewPCG(1, 2)
	fivePM := time.Date(2026, 1, 5, 17, 0, 0, 0, time.UTC)
	var stored []byte // empty: a key seen for the first time
	for _, now := range []time.Time{fivePM, fivePM, fivePM, fivePM.Add(time.Minute)} {
		var s admission.State
		if err := s.UnmarshalBinary(stored); err != nil {
			s = admission.State{} // unreadable: start afresh
		}
		s, d := admission.Decide(s, now, rnd, c)
		stored, _ = s.AppendBinary(stored[:0]) // compare-and-swap here
		fmt.Println(now.Format("15:04:05"), d.Action, d.Delay <= c.MaxDelay)
	}
	// Output:
	// 17:00:00 admit true
	// 17:00:00 delay true
	// 17:00:00 delay true
	// 17:01:00 admit true
}
