#include "core/train/cuda_graph.hpp"

#include <torch/version.h>

#include <stdexcept>

#if SELECTIVBENCH_TORCH_CUDA && \
    (TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1))
#define SELECTIVBENCH_CUDA_GRAPHS 1
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#else
#define SELECTIVBENCH_CUDA_GRAPHS 0
#endif

namespace sb {

#if SELECTIVBENCH_CUDA_GRAPHS

namespace {

// Runs `work` on `side` (a stream of device `index`), which first waits for the current stream
// of that device; that stream then waits for `side`.
void on_stream(int index, c10::cuda::CUDAStream side, const std::function<void()>& work) {
  const c10::cuda::CUDAGuard device(static_cast<c10::DeviceIndex>(index));
  const c10::cuda::CUDAStream current = c10::cuda::getCurrentCUDAStream();
  at::cuda::CUDAEvent before;
  before.record(current);
  before.block(side);
  {
    const c10::cuda::CUDAStreamGuard guard(side);
    work();
  }
  at::cuda::CUDAEvent after;
  after.record(side);
  after.block(current);
}

}  // namespace

bool cuda_graphs_available() { return true; }

struct CudaGraph::Impl {
  explicit Impl(int index)
      : device(index),
        // A side stream for warm-ups and the capture (a capture cannot use the default stream).
        stream(c10::cuda::getStreamFromPool(false, static_cast<c10::DeviceIndex>(index))) {}
  int device;
  c10::cuda::CUDAStream stream;
  at::cuda::CUDAGraph graph;
  bool captured = false;
};

CudaGraph::CudaGraph(int device_index) : impl_(std::make_unique<Impl>(device_index)) {}
CudaGraph::~CudaGraph() = default;

void CudaGraph::run_on_capture_stream(const std::function<void()>& work) {
  on_stream(impl_->device, impl_->stream, work);
}

void CudaGraph::capture(const std::function<void()>& work, const CudaGraph* pool_of) {
  if (impl_->captured) throw std::logic_error("CudaGraph::capture: already captured");
  const at::cuda::MempoolId_t pool =
      pool_of != nullptr && pool_of->impl_->captured ? pool_of->impl_->graph.pool()
                                                     : at::cuda::MempoolId_t{0, 0};
  on_stream(impl_->device, impl_->stream, [&] {
    // Thread-local mode: the thread that makes batches ahead (pinned allocations, copies on
    // its own stream) is not stopped by this capture.
    impl_->graph.capture_begin(pool, cudaStreamCaptureModeThreadLocal);
    try {
      work();
    } catch (...) {
      try {
        impl_->graph.capture_end();
      } catch (...) {
      }
      throw;
    }
    impl_->graph.capture_end();
  });
  impl_->captured = true;
}

void CudaGraph::replay() {
  if (!impl_->captured) throw std::logic_error("CudaGraph::replay: nothing captured");
  const c10::cuda::CUDAGuard device(static_cast<c10::DeviceIndex>(impl_->device));
  impl_->graph.replay();
}

#else

bool cuda_graphs_available() { return false; }

struct CudaGraph::Impl {};

CudaGraph::CudaGraph(int) {
  throw std::logic_error("CUDA graphs are not available in this build");
}
CudaGraph::~CudaGraph() = default;

void CudaGraph::run_on_capture_stream(const std::function<void()>&) {
  throw std::logic_error("CUDA graphs are not available in this build");
}

void CudaGraph::capture(const std::function<void()>&, const CudaGraph*) {
  throw std::logic_error("CUDA graphs are not available in this build");
}

void CudaGraph::replay() { throw std::logic_error("CUDA graphs are not available in this build"); }

#endif

}  // namespace sb
