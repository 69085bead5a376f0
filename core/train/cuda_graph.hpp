// CUDA graphs for the training update: the forward, backward, clipping and optimiser step of one
// update recorded once and replayed as one launch, so that the GPU never waits for the host to
// issue its hundreds of small kernels. No CUDA headers here; on builds without CUDA (or with a
// LibTorch older than 2.1) cuda_graphs_available() is false and the class refuses to be used.
//
// Rules for the captured work (the trainer keeps them): it reads its inputs from tensors that
// outlive the graph and are refilled before each replay, writes its results in place into such
// tensors, never reads a value on the host, and allocates nothing that must survive it.
#pragma once

#include <functional>
#include <memory>

namespace sb {

// True when this build can capture CUDA graphs.
bool cuda_graphs_available();

class CudaGraph {
 public:
  explicit CudaGraph(int device_index);
  ~CudaGraph();
  CudaGraph(const CudaGraph&) = delete;
  CudaGraph& operator=(const CudaGraph&) = delete;

  // Runs `work` eagerly on the capture stream, ordered after everything queued on the current
  // stream and before anything queued there later: the warm-up that a capture needs first
  // (lazy initialisation, cuBLAS workspaces, gradients allocated outside the graph's pool).
  void run_on_capture_stream(const std::function<void()>& work);

  // Records `work` (nothing runs). The graph shares its memory pool with `pool_of` when given:
  // graphs replayed one at a time on one stream may reuse each other's intermediates.
  void capture(const std::function<void()>& work, const CudaGraph* pool_of = nullptr);

  // Runs the recorded work on the current stream.
  void replay();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sb
