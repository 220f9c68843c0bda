"""Ports of TensorFlow's Graph Transform Tool tests (``tensorflow/tools/graph_transforms/*_test.cc``)."""
