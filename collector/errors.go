package collector

import (
	"context"
	"errors"
	"fmt"
)

// mappingError is an error of the Mapper, which already names the
// collector and the row: it is not wrapped again.
type mappingError struct{ err error }

func (e *mappingError) Error() string { return e.err.Error() }
func (e *mappingError) Unwrap() error { return e.err }

// sourceError is the one place a source's error gets its context, once:
// the collector and source it belongs to (a Mapper's error names the
// collector and row already, and retrying cannot mend it), and the run's
// deadline if that is what ended it. permanent, when not nil, marks the
// errors of the source's server that the same query would meet again.
func sourceError(ctx context.Context, collector, source string, err error, permanent func(error) bool) error {
	var me *mappingError
	if errors.As(err, &me) {
		return Permanent(me.err)
	}
	if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
		err = fmt.Errorf("%w: %w", ctxErr, err)
	}
	err = fmt.Errorf("collector %q: source %q: %w", collector, source, err)
	if permanent != nil && !IsPermanent(err) && permanent(err) {
		err = Permanent(err)
	}
	return err
}
