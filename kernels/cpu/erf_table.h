// Internal: coefficients of the vectorised erf used by the AVX2 / AVX-512 GELU.
//
// erf(|z|) on [0, 4) is cut into 8 intervals of width 0.5 with centres c_i = 0.25 + 0.5 i; on each,
// erf(c_i + t) = hi_i + (lo_i + t * (a1_i + t * (a2_i + ... + t * a9_i))) with hi + lo = erf(c_i) to
// ~1e-16 and a_n the Taylor coefficients erf^(n)(c_i) / n! (rounded to float). |t| <= 0.25, so the
// truncation + coefficient error is < 6.5e-9 (computed with mpmath at 50 digits); float Horner
// rounding adds < 1 ulp of the (small) correction term. For |z| >= 4, erf(z) = +-1 in float.
// A SIMD path looks a coefficient up per lane with one 8-entry permute (vpermps).
// Coefficients generated with mpmath (Taylor series of erf, Hermite-polynomial derivatives).
#pragma once

alignas(64) static const float kErfHi[8] = {2.763263881e-01f, 7.111556530e-01f, 9.229001403e-01f, 9.866716862e-01f,
                                            9.985373020e-01f, 9.998993874e-01f, 9.999957085e-01f, 9.999998808e-01f};
alignas(64) static const float kErfLo[8] = {2.047585657e-09f,  -1.934636273e-08f, -1.202903377e-08f, -1.495330260e-08f,
                                            -1.860389354e-08f, -9.281738933e-09f, -1.124503957e-08f, 5.482033050e-09f};
alignas(64) static const float kErfA[9][8] = {
    {1.060014129e+00f, 6.429310441e-01f, 2.365211248e-01f, 5.277499557e-02f, 7.142318878e-03f, 5.862772232e-04f, 2.918902464e-05f, 8.814321859e-07f},
    {-2.650035322e-01f, -4.821982980e-01f, -2.956514060e-01f, -9.235624224e-02f, -1.607021689e-02f, -1.612262451e-03f, -9.486433555e-05f, -3.305370683e-06f},
    {-3.091707826e-01f, 2.678879537e-02f, 1.675357968e-01f, 9.015728533e-02f, 2.172455378e-02f, 2.760388656e-03f, 1.958097127e-04f, 7.969616490e-06f},
    {1.269808561e-01f, 1.506869644e-01f, -6.159404293e-03f, -4.810221121e-02f, -1.908338442e-02f, -3.258113749e-03f, -2.865693241e-04f, -1.384123971e-05f},
    {8.005315065e-02f, -5.324272811e-02f, -4.718103632e-02f, 6.624361500e-03f, 1.065767929e-02f, 2.755808411e-03f, 3.137972381e-04f, 1.837097443e-05f},
    {-4.053265974e-02f, -2.687251009e-02f, 2.130127326e-02f, 8.963044733e-03f, -2.904357156e-03f, -1.657327404e-03f, -2.635284909e-04f, -1.927272206e-05f},
    {-1.616508327e-02f, 1.843523607e-02f, 3.625982674e-03f, -6.058751605e-03f, -6.704559783e-04f, 6.460409495e-04f, 1.699914137e-04f, 1.627530219e-05f},
    {9.695887566e-03f, 2.301788190e-03f, -5.697677843e-03f, 7.300512516e-04f, 9.994937573e-04f, -8.901156980e-05f, -8.164763130e-05f, -1.112822702e-05f},
    {2.604550449e-03f, -3.968260251e-03f, 8.776361938e-04f, 8.941817214e-04f, -3.693804319e-04f, -7.122311217e-05f, 2.591384691e-05f, 6.108880825e-06f},
};
