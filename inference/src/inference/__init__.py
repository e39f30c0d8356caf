"""The car price API: Litestar + msgspec under Granian, serving one ONNX bundle.

A request's path, module by module: `admission` first turns a prediction away with a 503 while
the worker's event loop lags; `routes` matches it to a thin handler; `decode` turns the
JSON body into a `Car` (or, for a batch, a list of them) or raises the 4xx the client deserves;
`predict` prices the cars, a single car by way of `batch_queue`, which coalesces concurrent
requests into one run and sheds load with `OverloadedError`; the run reads the current model
from `reload` (which swaps in new bundles in the background) and calls `model`, the open ONNX
Runtime session that turns the cars into feeds and prices; `encode` holds the response Structs
the handler returns; `errors` maps what was raised on the way (no model yet, overload) to 503s
with Retry-After. Around all of it, `metrics` times and counts each request; `app` wires these
parts for one worker (`openapi` documents the bodies the handlers decode themselves),
`settings` validates its configuration from the environment, and `cli` (`car-serve`) starts
Granian's workers after `multiprocess` has prepared the metrics directory they share.

Each answer `predict` returns is also appended to `prediction_log`'s in-memory buffer (when
`PREDICTION_LOG_DIR` is set); a background task of the worker writes the buffer to the worker's
own files through `segment_writer`, off the request's path.
"""
