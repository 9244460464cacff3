"""Scale: users sharded across devices (`jaxpref.scale.sharding`) and files streamed into
per-user counts in fixed memory (`jaxpref.scale.streaming`)."""
