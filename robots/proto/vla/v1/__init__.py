"""vla.v1: policy_pb2 (messages) and policy_pb2_grpc (PolicyService stubs), generated."""
