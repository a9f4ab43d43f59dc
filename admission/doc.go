// Package admission is the algorithm behind shadowlab's jittered admission
// of scheduled bursts: per key, at most Limit requests reach the upstream in
// any window of length Window (sliding, not aligned); requests over the
// budget are held for a jittered delay of at most MaxDelay (ModeDelay),
// refused with a jittered Retry-After (ModeReject), or only counted
// (ModeObserve).
//
// It is pure and stdlib only, and builds for GOOS=wasip1. Decide(state, now,
// rnd, cfg) returns the key's new State and a Decision and touches nothing
// else: time and randomness are arguments, and the State is a fixed-size
// value of StateSize (173) bytes, so the wasm plugin can keep it in Envoy's
// shared data and retry a compare-and-swap, while the ext_proc server uses a
// Limiter (keys in memory, bounded, one mutex). Nothing allocates on the hot
// path.
//
// # Delay: a slot schedule with periodic jitter
//
// ModeDelay (and ModeObserve with MaxDelay > 0) gives every admitted request
// a slot. With T = ceil((Window+Slack)/Limit), slot k of a schedule has a
// grid time g_k, at least T after g_{k-1}, and a release time r_k = g_k +
// u_k, where the offset u_k in [0, T) is a hash of the schedule's seed and
// k mod Limit. A request arriving at now takes the next slot k with
// g_k = max(next, now-u_k), so it is released at once if the schedule is
// behind now and at r_k otherwise; then next = g_k + T. If r_k is more than
// MaxDelay away the request is refused at once with a Retry-After and takes
// no slot: a request is either held with a delay in (0, MaxDelay] and then
// admitted, or refused at decision time, never held and then refused. A
// key idle for two slots (now >= next + 2T) starts a new schedule: seed
// from rnd, k = 0, and after its first slot a random phase in [0, T).
//
// Guarantee: however late each held request is released within Slack, any
// window [t, t+Window) holds at most Limit releases. Proof: Limit+1
// releases i < j (j >= i+Limit) cannot share a window if r_j - r_i >=
// Window + Slack, since lateness shrinks a difference by at most Slack;
// and releases increase with k, so r_j - r_i >= r_{i+Limit} - r_i. Within a
// schedule, u depends only on k mod Limit, so r_{i+Limit} - r_i = g_{i+Limit}
// - g_i >= Limit*T >= Window + Slack. Across a new schedule: its first grid
// time is >= now - T + 1 > next + T, so for old slot i (at most m, the old
// schedule's last slot; g_i <= next - (m-i+1)T, r_i < g_i + T) and new slot
// k, r'_k - r_i > (m-i+1+k)T: Limit slots apart means at least Limit*T.
// Releases are strictly increasing (r_{k+1} - r_k >= T - (T-1) = 1 ns): no
// two at the same nanosecond. The proof uses only the grid, so it holds for
// decisions with out-of-order times (threads that read the clock before
// winning the compare-and-swap), except that a schedule more than
// MaxDelay + Window + 2T ahead of now is taken as stale (another config, or
// the clock stepped back) and forgotten.
//
// # Bound at release
//
// The schedule's guarantee assumes every release is at most Slack late. A
// process descheduled for a while, a stalled timer or a worker that ticks
// late releases its backlog at once, and the window after it can hold
// Limit plus the backlog. So delay mode also counts the actual releases of
// each key, in the State's sliding window (the reject mode's, which delay
// mode does not otherwise use): Release(s, now, c) counts a held request
// let go at now if fewer than Limit were released in (now-Window, now],
// and otherwise says how long to wait for room; a request the schedule
// lets pass at once is counted by Decide the same way, and held for room
// (refused if that is past MaxDelay) when the window is full. The caller
// holds a pushed-back request again while its MaxDelay since the decision
// allows, and answers 429 with a Retry-After otherwise. With exact times
// and non-decreasing release times the window never pushes back (the
// schedule stays Slack under it); under any lateness the releases, counted
// where they happen, never exceed Limit in any window (the reject window's
// proof), and the cost is longer waits. TestBoundAtRelease stalls a worker
// for 400 ms, then releases everything at once.
//
// Why periodic offsets: independent offsets in slots of Window/Limit put
// Limit+1 releases in one window (slot i late, slot i+Limit early);
// TestBurstAtOneInstant catches that variant. Fresh offsets every window
// would cost their width in throughput every window. Offsets that repeat
// every Limit slots cost nothing: a long burst drains at exactly Limit per
// Window+Slack. The gaps between releases vary, uniform differences of
// offsets around T (standard deviation T/sqrt(6)), and the pattern repeats
// every Limit slots of one busy period; it differs for every key and busy
// period, and the random phase keeps slots Limit, 2*Limit... of keys that
// start at the same instant apart (the first request passes at once, so
// without it those slots would land on now + n*Limit*T exactly). The phase
// costs up to one slot once per schedule: the second request of a burst
// waits up to 3T.
//
// # Reject: a sliding window in 17 sub-windows
//
// ModeReject (and ModeObserve without MaxDelay) admits a request at once if
// fewer than Limit were admitted in (now-Window, now] and refuses it
// otherwise; nothing is held. The State cuts time into sub-windows of width
// b = ceil(Window/16) and keeps the 17 newest, each with its count and the
// time of its latest admission (to the nanosecond for windows up to 68 s,
// else rounded up to b/2^32). The sum counts every sub-window whose latest
// admission is after now-Window.
//
// Guarantee: for non-decreasing times, any window [t, t+Window) holds at
// most Limit admissions. Proof: let a be the last admission in the window
// and x any other; x > a - Window. x's sub-window has its latest admission
// >= x > a - Window, and lies within the 17 newest at a's decision because
// 16b >= Window; so x was counted when a was admitted, and the count with
// a was at most Limit. The count errs on the safe side only for a
// sub-window whose admissions straddle now-Window: at most one
// sub-window's admissions for at most b. A burst at one instant gets Limit
// at once and room again exactly Window later; sustained overload gets at
// least Limit per Window + b. A time behind the newest sub-window (worker
// clocks) is counted in the newest one; a state more than 17 sub-windows
// ahead of now is forgotten.
//
// # Retry-After
//
// A refused request is told to come back when the budget has room for it.
// Let E be the earliest time the budget could admit it (delay: when its slot
// would be within MaxDelay, less than three slots away; reject: when enough of
// the oldest sub-windows are out, at most Window + b away). Refusals book
// steps after E in a horizon kept in the State: the k-th refusal of a burst
// comes back at a uniformly random point of [E + k*step, E + (k+1)*step),
// so retries return at the pace the budget admits them. The step is T,
// slower when whole seconds bunch retries into clumps the budget cannot
// take at once: a clump gets (MaxDelay+T)/T slots in delay mode, Limit in
// reject mode. Once the horizon is a spread = max(Window, MinRetrySpread)
// (one minute) past E, further refusals come back uniformly within
// [E, E + spread). RetryAfter is ceil((at - now)/1s), at least 1, and at
// most Config.MaxRetryAfter = ceil((wait bound + spread)/1s): for 100/s,
// 61 s (delay) or 62 s (reject); for 10000/15m in reject mode, 1857 s. The
// minute exceeds ceil(Window/1s) on purpose: in whole seconds a 1 s window
// leaves one or two values, so 1 000 refusals would return in two clumps;
// with booking, a burst of 1 000 at 100/s is told 2 to 10 s (reject) and
// drains at 100/s, and a minute bounds how far any client is sent away.
//
// # Observe
//
// ModeObserve decides and updates the State exactly as ModeDelay (MaxDelay
// > 0) or ModeReject (MaxDelay = 0) would, and reports it in
// Decision.Outcome, Delay and RetryAfter, but Decision.Action is always
// Admit: the dry run for tuning a limit.
//
// # State and time
//
// A State belongs to one key under one Config: start keys afresh after a
// change of Config (for example, name shared-data keys after it). Times are
// nanoseconds since the Unix epoch, clamped to 1970-2116. The Source is any
// Uint64() uint64 (math/rand/v2's PCG or ChaCha8); it is called at most
// twice per decision. State.Idle tells when a key's State can be dropped:
// from then on it decides like the zero State (up to the random draws).
package admission
