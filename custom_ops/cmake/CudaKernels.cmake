# Adds the CUDA kernels of SelectiveScan, CausalConv1d, ResidualRMSNorm, Linear and LastArgMax to the op library (MAMBA_EXPORT_WITH_CUDA=ON).
#
# Hopper only: sm_90 machine code plus compute_90 PTX for newer GPUs. The CUDA
# runtime is linked statically so the library needs no libcudart at load time.
# The caller has enabled the CUDA language and found CUDAToolkit.
function(mamba_export_add_cuda_kernels target)
  set(_cuda_source "${CMAKE_CURRENT_SOURCE_DIR}/selective_scan/cuda.cu")
  if(NOT EXISTS "${_cuda_source}")
    message(FATAL_ERROR "MAMBA_EXPORT_WITH_CUDA=ON but ${_cuda_source} does not exist")
  endif()
  target_sources(${target} PRIVATE
    register_cuda.cc
    selective_scan/ort_kernel_cuda.cc
    selective_scan/cuda.cu
    causal_conv/ort_kernel_cuda.cc
    causal_conv/cuda.cu
    residual_norm/ort_kernel_cuda.cc
    residual_norm/cuda.cu
    linear/ort_kernel_cuda.cc
    linear/cuda.cu
    linear/cuda_tile.cu
    linear/cublas.cc
    last_argmax/ort_kernel_cuda.cc
    last_argmax/cuda.cu
    common/dependent_launch.cu
    common/index_width.cu
  )
  set_target_properties(${target} PROPERTIES
    CUDA_ARCHITECTURES "90-real;90-virtual"
    CUDA_RUNTIME_LIBRARY Static
    CUDA_STANDARD 17
    CUDA_STANDARD_REQUIRED ON
  )
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:CUDA>:-O3 --Werror default-stream-launch -Xcompiler=-fvisibility=hidden>
  )
  # register.cc calls RegisterCudaOps only in this configuration; build_info.cc reports it.
  set_property(SOURCE register.cc build_info.cc APPEND PROPERTY COMPILE_DEFINITIONS MAMBA_EXPORT_WITH_CUDA=1)
  # cuBLAS is found in the process at run time (linear/cublas.cc), hence dlopen and no cuBLAS link.
  target_link_libraries(${target} PRIVATE CUDA::cudart_static ${CMAKE_DL_LIBS})
endfunction()
