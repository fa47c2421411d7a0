// Package tracing decorates coord's interfaces with OpenTelemetry spans:
// one span per call, with bounded attributes (operation, resource, key or
// topic name, outcome, fence, wait time), and trace context carried
// across instances with invalidations and events.
//
// It is its own Go module, so that the core module does not depend on
// OpenTelemetry. Decorate a Backend once, where it is built:
//
//	t := tracing.New(tracing.WithTracerProvider(tp))
//	b = t.Backend(b)
//
// Outcomes: every span has a coord.outcome attribute ("ok", or the kind
// of the error, as [github.com/cgn-bot/coord/middleware.ErrorKind] names
// it). "not_acquired" and "not_found" are outcomes of a call that worked,
// not errors: their spans keep the status unset. Other failures set the
// status to Error with the kind as its description; an error's message is
// never recorded, since it may quote input.
//
// Lease loss: when a lease is found lost (Release, Extend or TTL return
// [github.com/cgn-bot/coord.ErrNotHeld], or its Done channel closes
// before Release was called), a "coord.lease_lost" event is recorded on a
// span linked to the Acquire span that took the lease.
//
// Never recorded: lease tokens, session IDs (tokens), session handles,
// user IDs, session data, payloads and metadata. Names (resources, keys,
// topics) are recorded, cut to [MaxNameAttr] bytes, unless [WithoutNames]
// is given.
//
// Trace context crosses instances: Publish, Invalidate and
// InvalidatePattern inject the publishing span's context (with the
// propagator of [WithPropagator], W3C trace context by default) into a
// [github.com/cgn-bot/coord.TraceCarrier] that the backend carries in the
// message's optional "trace" field; a decorated subscription extracts it
// and runs the handler inside a consumer span of the publisher's trace.
// Messages without it (from the Node fleet, older instances) are
// delivered as before, in a new trace. docs/TRACING.md has the details.
package tracing
