"""The Cloud Run v2 WorkerPools gRPC surface of the fake Google, for the real gcloud.

`gcloud beta run worker-pools update` speaks only gRPC over TLS (its REST transport is refused
in the SDK). This server answers the three RPCs it makes (GetWorkerPool, UpdateWorkerPool,
Operations.GetOperation) by calling the Rust fake's v2 REST methods (workerPools.get and
workerPools.patch with allowMissing, the REST twin of UpdateWorkerPool), so the fake's one
world holds the change. Protobuf <-> JSON uses the generated types gcloud ships.

Run with gcloud's bundled Python (it has grpcio and the run_v2 types):
  .../platform/bundledpythonunix/bin/python3 fake_run_grpc.py SDK_ROOT REST_BASE CERT KEY
It listens on 127.0.0.1 with TLS on a free port and prints that port on its first line.
"""
import json
import os
import sys
import urllib.error
import urllib.request
from concurrent import futures

SDK_ROOT, REST_BASE, CERT, KEY = sys.argv[1:5]
LIB = os.path.join(SDK_ROOT, 'lib')
sys.path.insert(0, LIB)
sys.path.insert(0, os.path.join(LIB, 'third_party'))

import grpc  # noqa: E402
from cloudsdk.google.protobuf import any_pb2  # noqa: E402
from google.longrunning import operations_pb2  # noqa: E402
from googlecloudsdk.generated_clients.gapic_clients.run_v2.types import worker_pool as wp  # noqa: E402

OPERATIONS = {}


def rest(method, path, token, body=None):
    request = urllib.request.Request(
        REST_BASE + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={'authorization': token, 'content-type': 'application/json'},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as e:
        return {'__error__': e.code, 'body': e.read().decode(errors='replace')}


def token_of(context):
    return dict(context.invocation_metadata()).get('authorization', '')


def abort_on_error(answer, context):
    if '__error__' in answer:
        code = grpc.StatusCode.NOT_FOUND if answer['__error__'] == 404 else grpc.StatusCode.INTERNAL
        context.abort(code, answer['body'])


def get_worker_pool(request_bytes, context):
    request = wp.GetWorkerPoolRequest.deserialize(request_bytes)
    answer = rest('GET', '/v2/' + request.name, token_of(context))
    abort_on_error(answer, context)
    pool = wp.WorkerPool.from_json(json.dumps(answer), ignore_unknown_fields=True)
    return wp.WorkerPool.serialize(pool)


def operation(name, pool_json):
    op = operations_pb2.Operation(name=name, done=True)
    packed = any_pb2.Any()
    packed.Pack(wp.WorkerPool.pb(wp.WorkerPool.from_json(json.dumps(pool_json), ignore_unknown_fields=True)))
    op.response.CopyFrom(packed)
    op.metadata.CopyFrom(packed)
    return op


def update_worker_pool(request_bytes, context):
    request = wp.UpdateWorkerPoolRequest.deserialize(request_bytes)
    body = json.loads(wp.WorkerPool.to_json(request.worker_pool))
    allow = 'true' if request.allow_missing else 'false'
    answer = rest('PATCH', '/v2/%s?allowMissing=%s' % (request.worker_pool.name, allow), token_of(context), body)
    abort_on_error(answer, context)
    OPERATIONS[answer['name']] = answer.get('response', {})
    return operation(answer['name'], answer.get('response', {})).SerializeToString()


def get_operation(request_bytes, context):
    request = operations_pb2.GetOperationRequest.FromString(request_bytes)
    if request.name not in OPERATIONS:
        context.abort(grpc.StatusCode.NOT_FOUND, 'no such operation')
    return operation(request.name, OPERATIONS[request.name]).SerializeToString()


def unimplemented(method):
    def refuse(request_bytes, context):
        context.abort(grpc.StatusCode.UNIMPLEMENTED, 'not in the fake: ' + method)
    return refuse


class Handler(grpc.GenericRpcHandler):
    TABLE = {
        '/google.cloud.run.v2.WorkerPools/GetWorkerPool': get_worker_pool,
        '/google.cloud.run.v2.WorkerPools/UpdateWorkerPool': update_worker_pool,
        '/google.longrunning.Operations/GetOperation': get_operation,
    }

    def service(self, handler_call_details):
        method = handler_call_details.method
        function = self.TABLE.get(method) or unimplemented(method)
        same = lambda b: b  # noqa: E731
        return grpc.unary_unary_rpc_method_handler(function, request_deserializer=same, response_serializer=same)


def main():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((Handler(),))
    with open(KEY, 'rb') as k, open(CERT, 'rb') as c:
        credentials = grpc.ssl_server_credentials([(k.read(), c.read())])
    port = server.add_secure_port('127.0.0.1:0', credentials)
    server.start()
    print(port, flush=True)
    server.wait_for_termination()


if __name__ == '__main__':
    main()
