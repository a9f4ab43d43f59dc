package admission

import "time"

// MostInWindow is the largest number of times in any half-open window
// [t, t+w), and the start of the first such window: the measure in which
// the guarantee "at most Limit per Window" is stated. times must be sorted
// in ascending order.
func MostInWindow(times []time.Time, w time.Duration) (most int, from time.Time) {
	lo := 0
	for hi := range times {
		for times[hi].Sub(times[lo]) >= w {
			lo++
		}
		if n := hi - lo + 1; n > most {
			most, from = n, times[lo]
		}
	}
	return most, from
}
