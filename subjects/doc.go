// Package subjects maps Upvest event types onto NATS subjects and CloudEvent
// types. The mapping is total and pure: every input string, however hostile,
// yields a valid NATS publish subject inside <prefix>.>, and the same input
// always yields the same subject.
//
// An event type is split on its first '.' into a family and a state, and the
// subject is always exactly <prefix>.<family>.<state>:
//
//	ORDER.FILLED         -> upvest.order.filled
//	USER_CHECK.PASSED    -> upvest.user_check.passed
//	ORDER                -> upvest.order.unknown     (no dot: state is "unknown")
//	.FILLED              -> upvest.unknown.filled    (empty token: "unknown")
//	A.B.C                -> upvest.a.b_c             (later dots stay in the state, as '_')
//	ORDER.FILLED *>      -> upvest.order.filled___
//
// Each token is lower-cased; every byte that is not printable ASCII (spaces,
// control characters, DEL), every '.', '*' and '>' inside a token, and every
// non-ASCII rune (one '_' per rune; one per byte of invalid UTF-8) becomes
// '_'. A token is cut after MaxTokenLen bytes, so a hostile type cannot make
// a huge subject; types that differ only beyond that length share a subject.
// Subscribers can therefore rely on exactly two tokens after the prefix and
// filter with <prefix>.<family>.* or <prefix>.*.<state>.
//
// The prefix is not sanitized: it must satisfy ValidPrefix (the config
// package checks RELAY_SUBJECT_PREFIX with it). With an invalid prefix the
// functions still never panic, but their results are not valid subjects.
//
// Dead letters go to DeadLetter(prefix), <prefix>._deadletter, which has one
// token after the prefix and so never collides with an event subject; the
// stream captures Stream(prefix), <prefix>.>.
package subjects
